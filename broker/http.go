package broker

import "net/http"

// newHTTPHandler is a placeholder until the HTTP API lands.
func newHTTPHandler(b *Broker, isHTTPS bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ping" {
			_, _ = w.Write([]byte(b.Health()))
			return
		}
		http.NotFound(w, r)
	})
}
