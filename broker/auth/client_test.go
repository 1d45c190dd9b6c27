package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const testSecret = "s3cr3t+/=&?"

var testRequest = Request{RemoteIP: "127.0.0.1", TLS: true, CommonName: "client.example", Secret: testSecret}

const grantAll = `{"ttl":60,"identity":"id","identity_url":"http://id","authorizations":[{"topic":".*","channels":[".*"],"permissions":["subscribe","publish"]}]}`

func TestNewHTTPRequestGet(t *testing.T) {
	req, err := NewHTTPRequest(context.Background(), MethodGet, Endpoint("127.0.0.1:4181"), testRequest)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodGet || req.URL.Scheme != "http" || req.URL.Host != "127.0.0.1:4181" || req.URL.Path != "/auth" {
		t.Errorf("request %s %s", req.Method, req.URL)
	}
	want := url.Values{"remote_ip": {"127.0.0.1"}, "tls": {"true"}, "secret": {testSecret}, "common_name": {"client.example"}}
	if got := req.URL.Query(); got.Encode() != want.Encode() {
		t.Errorf("query %v, want %v", got, want)
	}
	if got := req.Header.Get("Accept"); got != "application/vnd.nsq; version=1.0" {
		t.Errorf("Accept %q", got)
	}
	if req.Body != nil && req.Body != http.NoBody {
		t.Error("GET has a body")
	}
	if strings.Contains(RedactURL(req.URL.String()), "s3cr3t") {
		t.Errorf("RedactURL kept the secret: %s", RedactURL(req.URL.String()))
	}
}

func TestNewHTTPRequestPost(t *testing.T) {
	plain := Request{RemoteIP: "127.0.0.1", Secret: "abc"}
	req, err := NewHTTPRequest(context.Background(), MethodPost, "http://auth.example:8080/v1/auth?x=1", plain)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != http.MethodPost || req.URL.String() != "http://auth.example:8080/v1/auth?x=1" {
		t.Errorf("request %s %s: the URL must be the address as given", req.Method, req.URL)
	}
	body, _ := io.ReadAll(req.Body)
	want := `{"common_name":[""],"remote_ip":["127.0.0.1"],"secret":["abc"],"tls":["false"]}`
	if string(body) != want {
		t.Errorf("body\n got %s\nwant %s", body, want)
	}
	if got := req.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type %q", got)
	}
	if got := req.Header.Get("Accept"); got != "application/vnd.nsq; version=1.0" {
		t.Errorf("Accept %q", got)
	}
}

func TestEndpoint(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:4181":                  "http://127.0.0.1:4181/auth",
		"auth.internal:80":                "http://auth.internal:80/auth",
		"https://auth.example/check":      "https://auth.example/check",
		"http://10.0.0.1:9000/nsq/auth?a": "http://10.0.0.1:9000/nsq/auth?a",
	} {
		if got := Endpoint(addr); got != want {
			t.Errorf("Endpoint(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://a:1/auth?common_name=&remote_ip=1.2.3.4&secret=hunter2&tls=false": "http://a:1/auth?common_name=&remote_ip=1.2.3.4&secret=REDACTED&tls=false",
		"http://a:1/auth":             "http://a:1/auth",
		"http://user:pw@a:1/auth":     "http://REDACTED@a:1/auth",
		"http://a:1/%zz?secret=hunt2": "http://a:1/%zz?REDACTED",
	} {
		if got := RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestParseMethod(t *testing.T) {
	for _, s := range []string{"get", "post"} {
		if m, err := ParseMethod(s); err != nil || string(m) != s {
			t.Errorf("ParseMethod(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "GET", "put", "post "} {
		if _, err := ParseMethod(s); err == nil {
			t.Errorf("ParseMethod(%q) accepted", s)
		}
	}
}

// recordingServer answers every request with status and body, and keeps
// what it was asked.
type recordingServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
}

type recorded struct {
	method, path, contentType string
	values                    url.Values
}

func startRecordingServer(t *testing.T, status int, body string) *recordingServer {
	t.Helper()
	s := &recordingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recorded{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"), values: r.URL.Query()}
		if r.Method == http.MethodPost {
			rec.values = nil
			if err := json.NewDecoder(r.Body).Decode(&rec.values); err != nil {
				t.Errorf("POST body: %v", err)
			}
		}
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *recordingServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *recordingServer) last(t *testing.T) recorded {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		t.Fatal("the auth server was not asked")
	}
	return s.requests[len(s.requests)-1]
}

func hostPort(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func testClient(method Method, addrs ...string) *Client {
	return NewClient(Config{Addresses: addrs, Method: method, ConnectTimeout: time.Second, RequestTimeout: 2 * time.Second})
}

func TestQueryGetAndPost(t *testing.T) {
	for _, method := range []Method{MethodGet, MethodPost} {
		t.Run(string(method), func(t *testing.T) {
			srv := startRecordingServer(t, http.StatusOK, grantAll)
			s, err := testClient(method, hostPort(srv.Server)).Query(context.Background(), testRequest)
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			if s.Identity != "id" || !s.Allowed("t", "c") {
				t.Errorf("state %+v", s)
			}
			got := srv.last(t)
			if got.method != strings.ToUpper(string(method)) || got.path != "/auth" {
				t.Errorf("asked %s %s", got.method, got.path)
			}
			if want := testRequest.Values(); got.values.Encode() != want.Encode() {
				t.Errorf("values %v, want %v", got.values, want)
			}
			if method == MethodPost && got.contentType != "application/json" {
				t.Errorf("Content-Type %q", got.contentType)
			}
		})
	}
}

func TestQueryFullURL(t *testing.T) {
	srv := startRecordingServer(t, http.StatusOK, grantAll)
	if _, err := testClient(MethodGet, srv.URL+"/custom/path").Query(context.Background(), testRequest); err != nil {
		t.Fatal(err)
	}
	if got := srv.last(t).path; got != "/custom/path" {
		t.Errorf("path %q, want the URL as given", got)
	}
}

// deadAddress is a loopback address nothing listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestQueryFailuresKeepTheSecretOut(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets Close finish
	garbage := startRecordingServer(t, http.StatusOK, "not json")
	denied := startRecordingServer(t, http.StatusInternalServerError, "boom")
	for name, addr := range map[string]string{
		"dead":    deadAddress(t),
		"garbage": hostPort(garbage.Server),
		"500":     hostPort(denied.Server),
		"slow":    hostPort(slow),
	} {
		for _, method := range []Method{MethodGet, MethodPost} {
			t.Run(name+"/"+string(method), func(t *testing.T) {
				c := NewClient(Config{Addresses: []string{addr}, Method: method, ConnectTimeout: time.Second, RequestTimeout: 300 * time.Millisecond})
				start := time.Now()
				s, err := c.Query(context.Background(), testRequest)
				if err == nil {
					t.Fatalf("Query = %+v, want an error", s)
				}
				if elapsed := time.Since(start); elapsed > 5*time.Second {
					t.Errorf("took %s: the request timeout did not apply", elapsed)
				}
				if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), url.QueryEscape(testSecret)) {
					t.Errorf("the error shows the secret: %v", err)
				}
				if !strings.Contains(err.Error(), addr) {
					t.Errorf("the error does not name the server %s: %v", addr, err)
				}
			})
		}
	}
}

func TestQueryTriesEveryServer(t *testing.T) {
	good := startRecordingServer(t, http.StatusOK, grantAll)
	dead1, dead2 := deadAddress(t), deadAddress(t)
	c := testClient(MethodGet, dead1, hostPort(good.Server), dead2)
	for start := range 3 {
		c.start = func(int) int { return start }
		if _, err := c.Query(context.Background(), testRequest); err != nil {
			t.Fatalf("starting at %d: %v", start, err)
		}
	}
	if got := good.count(); got != 3 {
		t.Errorf("the good server was asked %d times, want 3", got)
	}

	c = testClient(MethodGet, dead1, dead2)
	_, err := c.Query(context.Background(), testRequest)
	if err == nil || !strings.Contains(err.Error(), dead1) || !strings.Contains(err.Error(), dead2) {
		t.Errorf("error %v, want both servers named", err)
	}
}

func TestQueryStartsAtRandomServer(t *testing.T) {
	a := startRecordingServer(t, http.StatusOK, grantAll)
	b := startRecordingServer(t, http.StatusOK, grantAll)
	c := testClient(MethodGet, hostPort(a.Server), hostPort(b.Server))
	// One server answering all of 64 queries has odds of 2^-63.
	for range 64 {
		if _, err := c.Query(context.Background(), testRequest); err != nil {
			t.Fatal(err)
		}
	}
	if a.count() == 0 || b.count() == 0 || a.count()+b.count() != 64 {
		t.Errorf("asked a %d and b %d times, want both and 64 in all", a.count(), b.count())
	}
}

func TestQueryCancelled(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(slow.Close)
	c := NewClient(Config{Addresses: []string{hostPort(slow), hostPort(slow)}, ConnectTimeout: time.Second, RequestTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Query(ctx, testRequest); err == nil {
		t.Fatal("Query succeeded")
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("took %s after the context ended", elapsed)
	}
}

// A 403 is asked again over https at the port its body names, by GET and
// by POST, as nsqd's HTTP client does.
func TestQuery403RetriesOverHTTPS(t *testing.T) {
	for _, method := range []Method{MethodGet, MethodPost} {
		t.Run(string(method), func(t *testing.T) {
			var httpsAsked atomic.Int32
			secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				httpsAsked.Add(1)
				values := r.URL.Query()
				if r.Method == http.MethodPost {
					values = nil
					_ = json.NewDecoder(r.Body).Decode(&values)
				}
				if r.Method != strings.ToUpper(string(method)) || values.Get("secret") != testSecret || r.URL.Path != "/auth" {
					http.Error(w, "wrong request", http.StatusBadRequest)
					return
				}
				_, _ = io.WriteString(w, grantAll)
			}))
			t.Cleanup(secure.Close)
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(secure.URL, "https://"))
			plain := startRecordingServer(t, http.StatusForbidden, `{"message":"TLS_REQUIRED","https_port":`+port+`}`)

			pool := x509.NewCertPool()
			pool.AddCert(secure.Certificate())
			c := NewClient(Config{
				Addresses: []string{hostPort(plain.Server)}, Method: method,
				ConnectTimeout: time.Second, RequestTimeout: 2 * time.Second,
				TLSConfig: &tls.Config{RootCAs: pool},
			})
			if _, err := c.Query(context.Background(), testRequest); err != nil {
				t.Fatalf("Query: %v", err)
			}
			if plain.count() != 1 || httpsAsked.Load() != 1 {
				t.Errorf("asked http %d and https %d times, want 1 and 1", plain.count(), httpsAsked.Load())
			}
		})
	}
}

func TestQuery403WithoutPort(t *testing.T) {
	plain := startRecordingServer(t, http.StatusForbidden, `{"message":"NO"}`)
	_, err := testClient(MethodGet, hostPort(plain.Server)).Query(context.Background(), testRequest)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("error %v, want a 403 failure", err)
	}
}

func TestRequestValues(t *testing.T) {
	got := Request{RemoteIP: "::1", Secret: "x"}.Values()
	for key, want := range map[string]string{"remote_ip": "::1", "tls": "false", "secret": "x", "common_name": ""} {
		if v, ok := got[key]; !ok || len(v) != 1 || v[0] != want {
			t.Errorf("%s = %q, want [%q]", key, v, want)
		}
	}
	if len(got) != 4 {
		t.Errorf("%d keys, want 4: %v", len(got), got)
	}
}

// fullListener is a loopback address whose listen queue is full: it
// accepts nothing, so a new connect waits for its SYN to be answered
// until the dialer gives up.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for range 16 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full: connects now hang
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Fatalf("the listen queue of %s never filled", addr)
	return ""
}

// ConnectTimeout (--http-client-connect-timeout) bounds the connect to an
// auth server on its own, well inside a long RequestTimeout.
func TestQueryConnectTimeout(t *testing.T) {
	addr := fullListener(t)
	c := NewClient(Config{Addresses: []string{addr}, ConnectTimeout: 300 * time.Millisecond, RequestTimeout: time.Minute})
	start := time.Now()
	_, err := c.Query(context.Background(), testRequest)
	if err == nil {
		t.Fatal("Query to a server that never accepts succeeded")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("Query gave up after %s: the connect timeout did not apply", took)
	}
	if !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("Query error %q does not say it timed out", err)
	}
}
