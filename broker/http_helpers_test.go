package broker

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"wren/protocol"
)

// startHTTPTestBroker is startTestBroker with a fixed broadcast address,
// which the golden files record.
func startHTTPTestBroker(t testing.TB, configure func(*Options)) *Broker {
	t.Helper()
	return startTestBroker(t, func(o *Options) {
		o.BroadcastAddress = "wren-test"
		if configure != nil {
			configure(o)
		}
	})
}

// httpResult is one HTTP exchange's outcome.
type httpResult struct {
	status int
	header http.Header
	body   string
}

// httpDo sends a request to the broker's HTTP listener.
func httpDo(t testing.TB, b *Broker, method, path string, body io.Reader) httpResult {
	t.Helper()
	return httpDoAddr(t, b.HTTPAddr().String(), method, path, body)
}

// httpDoAddr sends a request to the HTTP server at addr.
func httpDoAddr(t testing.TB, addr, method, path string, body io.Reader) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return httpSend(t, http.DefaultClient, req)
}

func httpSend(t testing.TB, c *http.Client, req *http.Request) httpResult {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(data)}
}

// httpJSON GETs path from the HTTP server at addr and decodes its JSON
// body into v.
func httpJSON(t testing.TB, addr, path string, v any) {
	t.Helper()
	r := httpDoAddr(t, addr, http.MethodGet, path, nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, r.status, r.body)
	}
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, r.body)
	}
}

// pollUntil checks cond every few milliseconds until it holds or timeout
// passes, then fails the test naming what it waited for.
func pollUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// v2TestConn is a raw V2 protocol client for tests that need exact control of
// what a client says.
type v2TestConn struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialV2(t testing.TB, tcpAddr string) *v2TestConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", tcpAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &v2TestConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	if _, err := conn.Write([]byte(protocol.MagicV2)); err != nil {
		t.Fatal(err)
	}
	return c
}

// send writes one command (with body when not nil).
func (c *v2TestConn) send(name string, body []byte, params ...string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write(protocol.AppendCommand(nil, name, body, params...)); err != nil {
		c.t.Fatalf("writing %s: %v", name, err)
	}
}

// expectOK reads frames, skipping heartbeats, until a response; it must be
// OK.
func (c *v2TestConn) expectOK(what string) {
	c.t.Helper()
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		typ, data, err := protocol.ReadFrame(c.r, 1<<20)
		if err != nil {
			c.t.Fatalf("%s: reading response: %v", what, err)
		}
		if typ == protocol.FrameTypeResponse && string(data) == string(protocol.ResponseHeartbeat) {
			continue
		}
		if typ != protocol.FrameTypeResponse || string(data) != "OK" {
			c.t.Fatalf("%s: got frame type %d %q, want OK", what, typ, data)
		}
		return
	}
}

// identify sends IDENTIFY with the given fields and waits for OK.
func (c *v2TestConn) identify(fields map[string]any) {
	c.t.Helper()
	body, err := json.Marshal(fields)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send("IDENTIFY", body)
	c.expectOK("IDENTIFY")
}

func (c *v2TestConn) pub(topic, body string) {
	c.t.Helper()
	c.send("PUB", []byte(body), topic)
	c.expectOK("PUB " + topic)
}
