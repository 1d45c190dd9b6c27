package integration

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// TestAuthWithGoNSQ runs the binary with two auth servers, one of them
// dead, asked by POST, and drives it with go-nsq clients that carry a
// secret, over the upgrades go-nsq negotiates. Every connection is
// authorized by the live server whichever server the broker tries first.
// (go-nsq's own test suite cannot run against a broker that requires
// auth: its tests set no secret, and go-nsq then stops at "Auth
// Required", against nsqd as well.)
func TestAuthWithGoNSQ(t *testing.T) {
	var mu sync.Mutex
	asked := map[string]int{} // secret → requests
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var values url.Values
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&values); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		asked[values.Get("secret")]++
		mu.Unlock()
		if values.Get("secret") != "everything" {
			_, _ = io.WriteString(w, `{"ttl":3600,"authorizations":[]}`)
			return
		}
		_, _ = io.WriteString(w, `{"ttl":3600,"identity":"ci","identity_url":"","authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe","publish"]}]}`)
	}))
	t.Cleanup(auth.Close)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + dead.Addr().String() + "/auth"
	_ = dead.Close()

	w := startWren(t, t.TempDir(),
		"--auth-http-address="+strings.TrimPrefix(auth.URL, "http://"),
		"--auth-http-address="+deadURL,
		"--auth-http-request-method=post",
		"--http-client-connect-timeout=1s", "--http-client-request-timeout=2s")

	for _, tc := range []struct {
		name            string
		snappy, deflate bool
	}{{"plain", false, false}, {"snappy", true, false}, {"deflate", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := nsq.NewConfig()
			cfg.AuthSecret = "everything"
			cfg.Snappy, cfg.Deflate = tc.snappy, tc.deflate
			topic := "auth_" + tc.name

			p, err := nsq.NewProducer(w.tcpAddr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			p.SetLogger(nil, nsq.LogLevelError)
			t.Cleanup(p.Stop)
			if err := p.Publish(topic, []byte("one")); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if err := p.MultiPublish(topic, [][]byte{[]byte("two"), []byte("three")}); err != nil {
				t.Fatalf("MultiPublish: %v", err)
			}
			if err := p.DeferredPublish(topic, 10*time.Millisecond, []byte("four")); err != nil {
				t.Fatalf("DeferredPublish: %v", err)
			}

			c, err := nsq.NewConsumer(topic, "ch", cfg)
			if err != nil {
				t.Fatal(err)
			}
			c.SetLogger(nil, nsq.LogLevelError)
			r := newReceived(false)
			c.AddHandler(r)
			if err := c.ConnectToNSQD(w.tcpAddr); err != nil {
				t.Fatalf("ConnectToNSQD: %v", err)
			}
			t.Cleanup(c.Stop)
			waitFor(t, 10*time.Second, "4 messages", func() bool { return r.distinct() == 4 })
		})
	}

	cfg := nsq.NewConfig()
	cfg.AuthSecret = "nothing"
	p, err := nsq.NewProducer(w.tcpAddr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.SetLogger(nil, nsq.LogLevelError)
	t.Cleanup(p.Stop)
	if err := p.Publish("auth_plain", []byte("x")); err == nil || !strings.Contains(err.Error(), "E_UNAUTHORIZED") {
		t.Errorf("Publish with a secret granted nothing: %v, want E_UNAUTHORIZED", err)
	}

	mu.Lock()
	defer mu.Unlock()
	// A producer and a consumer per case, each asking once.
	if got := asked["everything"]; got != 6 {
		t.Errorf("the live server was asked %d times, want 6", got)
	}
	if strings.Contains(w.logs(), "everything") {
		t.Errorf("the secret is in the logs:\n%s", w.logs())
	}
}
