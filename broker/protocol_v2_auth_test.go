package broker

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"wren/protocol"
)

// testAuthServer is a real auth server on loopback: it answers each
// secret with the reply set for it, and records every request.
type testAuthServer struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	replies  map[string]string // secret → reply body
	requests []url.Values      // as received, over GET or POST
	methods  []string
	release  chan struct{} // holds "slow" requests until closed
}

// Secrets with a fixed behaviour.
const (
	secretGarbage = "garbage-s3cret" // answered with a body that is not JSON
	secretSlow    = "slow-s3cret"    // answered only when the request ends
)

func startTestAuthServer(t *testing.T) *testAuthServer {
	t.Helper()
	a := &testAuthServer{t: t, replies: map[string]string{}, release: make(chan struct{})}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	t.Cleanup(func() { close(a.release) }) // runs before Close
	return a
}

func (a *testAuthServer) serve(w http.ResponseWriter, r *http.Request) {
	values := r.URL.Query()
	if r.Method == http.MethodPost {
		values = nil
		if err := json.NewDecoder(r.Body).Decode(&values); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	a.mu.Lock()
	a.requests = append(a.requests, values)
	a.methods = append(a.methods, r.Method)
	reply, ok := a.replies[values.Get("secret")]
	a.mu.Unlock()
	switch secret := values.Get("secret"); {
	case secret == secretGarbage:
		_, _ = io.WriteString(w, "<html>not an auth reply</html>")
	case secret == secretSlow:
		select {
		case <-r.Context().Done():
		case <-a.release:
		}
	case ok:
		_, _ = io.WriteString(w, reply)
	default:
		_, _ = io.WriteString(w, `{"ttl":3600,"authorizations":[]}`)
	}
}

// grant sets what secret is granted: ttl in seconds, an identity, and
// authorizations as JSON objects.
func (a *testAuthServer) grant(secret string, ttl int, identity string, authorizations ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.replies[secret] = fmt.Sprintf(`{"ttl":%d,"identity":%q,"identity_url":"https://id.example/%s","authorizations":[%s]}`,
		ttl, identity, identity, strings.Join(authorizations, ","))
}

// asked is how many requests carried secret.
func (a *testAuthServer) asked(secret string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, v := range a.requests {
		if v.Get("secret") == secret {
			n++
		}
	}
	return n
}

// lastRequest is the last request that carried secret, and its method.
func (a *testAuthServer) lastRequest(secret string) (url.Values, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := len(a.requests) - 1; i >= 0; i-- {
		if a.requests[i].Get("secret") == secret {
			return a.requests[i], a.methods[i]
		}
	}
	a.t.Fatalf("the auth server was never asked about %q", secret)
	return nil, ""
}

func (a *testAuthServer) address() string { return strings.TrimPrefix(a.srv.URL, "http://") }

// aliceGrants lets alice subscribe to orders/billing and publish to
// orders and events.
const (
	aliceSubscribe = `{"topic":"^orders$","channels":["^billing$"],"permissions":["subscribe"]}`
	alicePublish   = `{"topic":"^(orders|events)$","channels":["^$"],"permissions":["publish"]}`
	aliceReply     = `{"identity":"alice","identity_url":"https://id.example/alice","permission_count":2}`
)

// startAuthBroker starts a broker that asks auth by method.
func startAuthBroker(t *testing.T, auth *testAuthServer, method string, configure func(*Options)) *Broker {
	t.Helper()
	return startTestBroker(t, func(o *Options) {
		o.AuthHTTPAddresses = []string{auth.address()}
		o.AuthHTTPRequestMethod = method
		o.HTTPClientRequestTimeout = time.Second
		if configure != nil {
			configure(o)
		}
	})
}

// authed dials b and AUTHs with secret, expecting reply.
func authed(t *testing.T, b *Broker, secret, reply string) *rawClient {
	t.Helper()
	c := dialRaw(t, b)
	c.send(t, "AUTH", []byte(secret))
	c.expectResponse(t, reply)
	return c
}

func TestAuthRequiredFirst(t *testing.T) {
	auth := startTestAuthServer(t)
	b := startAuthBroker(t, auth, "get", nil)
	negotiated := dialRaw(t, b).identify(t, map[string]any{"feature_negotiation": true})
	if !strings.Contains(string(negotiated), `"auth_required":true`) {
		t.Errorf("IDENTIFY reply %s lacks auth_required:true", negotiated)
	}
	cases := []struct {
		name string
		send []byte
		want string
	}{
		{"PUB", rawCmd("PUB", []byte("x"), "orders"), "E_AUTH_FIRST AUTH required before PUB"},
		{"DPUB", rawCmd("DPUB", []byte("x"), "orders", "10"), "E_AUTH_FIRST AUTH required before DPUB"},
		// MPUB is refused before its body is read, as in nsqd: the line
		// alone is answered.
		{"MPUB", rawLine("MPUB", "orders"), "E_AUTH_FIRST AUTH required before MPUB"},
		{"SUB", rawLine("SUB", "orders", "billing"), "E_AUTH_FIRST AUTH required before SUB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, b)
			c.sendRaw(t, tc.send)
			c.expectError(t, tc.want)
			c.expectClosed(t)
		})
	}
	if b.ExistingTopic("orders") != nil {
		t.Error("a refused command created the topic")
	}
}

func TestAuthGrantsPerTopicAndChannel(t *testing.T) {
	for _, method := range []string{"get", "post"} {
		t.Run(method, func(t *testing.T) {
			auth := startTestAuthServer(t)
			auth.grant("alice", 3600, "alice", aliceSubscribe, alicePublish)
			b := startAuthBroker(t, auth, method, nil)

			pub := authed(t, b, "alice", aliceReply)
			pub.send(t, "PUB", []byte("one"), "orders")
			pub.expectResponse(t, "OK")
			pub.send(t, "MPUB", rawMPUBBody(2, rawMPUBOKEntry("two"), rawMPUBOKEntry("three")), "orders")
			pub.expectResponse(t, "OK")
			pub.send(t, "DPUB", []byte("four"), "events", "0")
			pub.expectResponse(t, "OK")
			pub.send(t, "PUB", []byte("x"), "payroll")
			pub.expectError(t, `E_UNAUTHORIZED AUTH failed for PUB on "payroll" ""`)
			pub.expectClosed(t)

			values, gotMethod := auth.lastRequest("alice")
			if gotMethod != strings.ToUpper(method) {
				t.Errorf("asked by %s, want %s", gotMethod, strings.ToUpper(method))
			}
			want := url.Values{"remote_ip": {"127.0.0.1"}, "tls": {"false"}, "secret": {"alice"}, "common_name": {""}}
			if values.Encode() != want.Encode() {
				t.Errorf("asked %v, want %v", values, want)
			}
			if n := auth.asked("alice"); n != 1 {
				t.Errorf("asked %d times within the TTL, want once", n)
			}

			sub := authed(t, b, "alice", aliceReply)
			sub.send(t, "SUB", nil, "orders", "billing")
			sub.expectResponse(t, "OK")
			sub.send(t, "RDY", nil, "10")
			for range 3 {
				sub.expectMessage(t)
			}

			for _, refused := range []struct{ topic, channel string }{{"orders", "audit"}, {"events", "billing"}, {"orders", "billing_v2"}} {
				c := authed(t, b, "alice", aliceReply)
				c.send(t, "SUB", nil, refused.topic, refused.channel)
				c.expectError(t, fmt.Sprintf("E_UNAUTHORIZED AUTH failed for SUB on %q %q", refused.topic, refused.channel))
				c.expectClosed(t)
			}
			mpub := authed(t, b, "alice", aliceReply)
			mpub.sendRaw(t, rawLine("MPUB", "payroll"))
			mpub.expectError(t, `E_UNAUTHORIZED AUTH failed for MPUB on "payroll" ""`)
			mpub.expectClosed(t)
		})
	}
}

// TestAuthGoNSQ: go-nsq sends AUTH with its AuthSecret when IDENTIFY says
// auth_required, and without a secret refuses to go on.
func TestAuthGoNSQ(t *testing.T) {
	auth := startTestAuthServer(t)
	auth.grant("alice", 3600, "alice", aliceSubscribe, alicePublish)
	b := startAuthBroker(t, auth, "post", nil)

	cfg := nsq.NewConfig()
	cfg.AuthSecret = "alice"
	p := newProducer(t, b, cfg)
	if err := p.Publish("orders", []byte("hello")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := p.MultiPublish("orders", [][]byte{[]byte("a"), []byte("b")}); err != nil {
		t.Fatalf("MultiPublish: %v", err)
	}
	h := &collector{}
	newConsumer(t, b, "orders", "billing", cfg, h)
	waitFor(t, 5*time.Second, "3 messages to alice's consumer", func() bool { return h.count() == 3 })

	denied := newProducer(t, b, cfg)
	if err := denied.Publish("payroll", []byte("x")); err == nil || !strings.Contains(err.Error(), "E_UNAUTHORIZED") {
		t.Errorf("Publish to payroll: %v, want E_UNAUTHORIZED", err)
	}
	anonymous := newProducer(t, b, nil)
	if err := anonymous.Publish("orders", []byte("x")); err == nil || !strings.Contains(err.Error(), "Auth Required") {
		t.Errorf("Publish without a secret: %v, want go-nsq's Auth Required", err)
	}
}

func TestAuthCommand(t *testing.T) {
	auth := startTestAuthServer(t)
	auth.grant("alice", 3600, "alice", aliceSubscribe, alicePublish)
	b := startAuthBroker(t, auth, "get", nil)

	c := authed(t, b, "alice", aliceReply)
	c.send(t, "AUTH", []byte("alice"))
	c.expectError(t, "E_INVALID AUTH already set")
	c.expectClosed(t)

	c = dialRaw(t, b)
	c.send(t, "AUTH", []byte("nobody"))
	c.expectError(t, "E_UNAUTHORIZED AUTH no authorizations found")
	c.expectClosed(t)

	c = dialRaw(t, b)
	c.sendRaw(t, rawWithBody("AUTH", 0, nil))
	c.expectError(t, "E_BAD_BODY AUTH invalid body size 0")
	c.expectClosed(t)

	c = authed(t, b, "alice", aliceReply)
	c.send(t, "SUB", nil, "orders", "billing")
	c.expectResponse(t, "OK")
	c.send(t, "AUTH", []byte("alice"))
	c.expectError(t, "E_INVALID cannot AUTH in current state")
	c.expectClosed(t)
}

// After the TTL the broker asks again with the stored secret, and what
// the server answers then is what is checked.
func TestAuthTTLExpiryAsksAgain(t *testing.T) {
	auth := startTestAuthServer(t)
	auth.grant("short", 1, "shorty", alicePublish)
	b := startAuthBroker(t, auth, "get", nil)
	c := authed(t, b, "short", `{"identity":"shorty","identity_url":"https://id.example/shorty","permission_count":1}`)

	publish := func() (int32, []byte) {
		c.send(t, "PUB", []byte("x"), "orders")
		return c.mustReadFrame(t)
	}
	deadline := time.Now().Add(10 * time.Second)
	for auth.asked("short") < 2 {
		if frameType, data := publish(); frameType != protocol.FrameTypeResponse {
			t.Fatalf("PUB within the grant: %q", data)
		}
		if time.Now().After(deadline) {
			t.Fatal("the broker did not ask again after the 1s TTL")
		}
		time.Sleep(50 * time.Millisecond) // pacing the polls, not synchronising
	}
	// The server now grants only events: once the new grant expires the
	// next PUB to orders is refused.
	auth.grant("short", 1, "shorty", `{"topic":"^events$","channels":["^$"],"permissions":["publish"]}`)
	for {
		frameType, data := publish()
		if frameType == protocol.FrameTypeError {
			if want := `E_UNAUTHORIZED AUTH failed for PUB on "orders" ""`; string(data) != want {
				t.Fatalf("got %q, want %q", data, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the changed grant never applied")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.expectClosed(t)
}

// A dead, slow or garbage-answering auth server fails the AUTH (and a
// re-query after the TTL) with E_AUTH_FAILED, tells the client nothing
// more, logs no secret, and delays no other client.
func TestAuthServerFailures(t *testing.T) {
	auth := startTestAuthServer(t)
	auth.grant("alice", 3600, "alice", aliceSubscribe, alicePublish)
	auth.grant("short", 1, "shorty", alicePublish)
	logs := &logBuffer{}
	b := startAuthBroker(t, auth, "get", func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.HTTPClientRequestTimeout = 500 * time.Millisecond
	})
	steady := authed(t, b, "alice", aliceReply)
	expiring := authed(t, b, "short", `{"identity":"shorty","identity_url":"https://id.example/shorty","permission_count":1}`)

	t.Run("garbage", func(t *testing.T) {
		c := dialRaw(t, b)
		c.send(t, "AUTH", []byte(secretGarbage))
		c.expectError(t, "E_AUTH_FAILED AUTH failed")
		c.expectClosed(t)
		steady.send(t, "PUB", []byte("x"), "orders")
		steady.expectResponse(t, "OK")
	})

	t.Run("slow", func(t *testing.T) {
		c := dialRaw(t, b)
		c.send(t, "AUTH", []byte(secretSlow))
		waitFor(t, 5*time.Second, "the slow AUTH to reach the server", func() bool { return auth.asked(secretSlow) == 1 })
		for range 3 { // answered while the other connection waits
			steady.send(t, "PUB", []byte("x"), "orders")
			steady.expectResponse(t, "OK")
		}
		c.expectError(t, "E_AUTH_FAILED AUTH failed")
		c.expectClosed(t)
	})

	t.Run("dead", func(t *testing.T) {
		auth.srv.Close()
		c := dialRaw(t, b)
		c.send(t, "AUTH", []byte("alice"))
		c.expectError(t, "E_AUTH_FAILED AUTH failed")
		c.expectClosed(t)
		// A grant still within its TTL needs no server.
		steady.send(t, "PUB", []byte("x"), "orders")
		steady.expectResponse(t, "OK")
		// An expired one does, and fails.
		deadline := time.Now().Add(10 * time.Second)
		for {
			expiring.send(t, "PUB", []byte("x"), "orders")
			frameType, data := expiring.mustReadFrame(t)
			if frameType == protocol.FrameTypeError {
				if string(data) != "E_AUTH_FAILED AUTH failed" {
					t.Fatalf("got %q, want E_AUTH_FAILED AUTH failed", data)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the expired grant was never asked for again")
			}
			time.Sleep(50 * time.Millisecond) // pacing the polls
		}
		expiring.expectClosed(t)
	})

	failures := logs.lines("AUTH failed")
	if len(failures) < 4 {
		t.Errorf("%d AUTH failures logged, want at least 4:\n%s", len(failures), logs)
	}
	for _, secret := range []string{secretGarbage, secretSlow, "alice", "short"} {
		if lines := logs.lines(secret); len(lines) > 0 {
			t.Errorf("the logs show the secret %q:\n%s", secret, strings.Join(lines, "\n"))
		}
	}
}

func TestAuthStats(t *testing.T) {
	auth := startTestAuthServer(t)
	auth.grant("alice", 3600, "alice", aliceSubscribe, alicePublish)
	b := startAuthBroker(t, auth, "get", nil)
	c := authed(t, b, "alice", aliceReply)
	c.send(t, "PUB", []byte("x"), "orders")
	c.expectResponse(t, "OK")

	var stats struct {
		Producers []map[string]any `json:"producers"`
	}
	httpJSON(t, b.HTTPAddr().String(), "/stats?format=json", &stats)
	if len(stats.Producers) != 1 {
		t.Fatalf("%d producers, want 1", len(stats.Producers))
	}
	got := stats.Producers[0]
	if got["authed"] != true || got["auth_identity"] != "alice" || got["auth_identity_url"] != "https://id.example/alice" {
		t.Errorf("producer stats %v, want authed alice", got)
	}
}

// Over TLS the auth server learns tls=true and the subject CN of the
// client's certificate.
func TestAuthTLSCommonName(t *testing.T) {
	certFile, keyFile, caFile := writeTestCertificates(t, t.TempDir())
	auth := startTestAuthServer(t)
	auth.grant("alice", 3600, "alice", aliceSubscribe, alicePublish)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile) // its CN is 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	// As in nsqd, the broker asks for a client certificate only under a
	// --tls-client-auth-policy; without one, no common_name is sent.
	for _, tc := range []struct {
		name         string
		policy       string
		certificates []tls.Certificate
		wantCN       string
	}{
		{"client certificate under require-verify", "require-verify", []tls.Certificate{cert}, "127.0.0.1"},
		{"client certificate without a policy", "", []tls.Certificate{cert}, ""},
		{"no client certificate", "", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startAuthBroker(t, auth, "post", func(o *Options) {
				o.TLSCert, o.TLSKey, o.TLSRootCAFile = certFile, keyFile, caFile
				o.TLSClientAuthPolicy = tc.policy
			})
			cfg := nsq.NewConfig()
			cfg.AuthSecret = "alice"
			cfg.TlsV1 = true
			cfg.TlsConfig = &tls.Config{Certificates: tc.certificates, InsecureSkipVerify: true}
			before := auth.asked("alice")
			if err := newProducer(t, b, cfg).Publish("orders", []byte("x")); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if auth.asked("alice") != before+1 {
				t.Fatal("the auth server was not asked")
			}
			values, _ := auth.lastRequest("alice")
			if values.Get("tls") != "true" || values.Get("common_name") != tc.wantCN {
				t.Errorf("asked tls=%q common_name=%q, want true and %q", values.Get("tls"), values.Get("common_name"), tc.wantCN)
			}
		})
	}
}

func TestAuthRequestMethodOption(t *testing.T) {
	opts := testOptions(t)
	opts.AuthHTTPRequestMethod = "put"
	if _, err := New(opts); err == nil || !strings.Contains(err.Error(), `--auth-http-request-method must be get or post, got "put"`) {
		t.Errorf("New: %v, want the method refused", err)
	}
	if got := NewOptions().AuthHTTPRequestMethod; got != "get" {
		t.Errorf("default method %q, want get", got)
	}
	b := startTestBroker(t, func(o *Options) { o.AuthHTTPRequestMethod = "post" })
	// A string option comes back as bare text, as nsqd sends it.
	if r := httpDo(t, b, "GET", "/config/auth_http_request_method", nil); r.status != 200 || r.body != "post" {
		t.Errorf("GET /config/auth_http_request_method: %d %q, want 200 post", r.status, r.body)
	}
}
