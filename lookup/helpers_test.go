package lookup

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"wren/protocol"
)

// ioTimeout bounds every read and write a test makes, so that a missing
// reply fails the test instead of hanging it.
const ioTimeout = 5 * time.Second

// testBroadcastAddress is the lookup's own broadcast address in tests.
const testBroadcastAddress = "wren-lookup-test"

// startTestLookup starts a lookup on loopback port 0, changed by configure
// (which may be nil), and shuts it down when the test ends. Logs go to
// stderr with -v and nowhere otherwise.
func startTestLookup(t testing.TB, configure func(*Options)) *Lookup {
	t.Helper()
	l := newTestLookup(t, configure)
	startAndCleanUp(t, l)
	return l
}

// startAndCleanUp starts l and shuts it down when the test ends.
func startAndCleanUp(t testing.TB, l *Lookup) {
	t.Helper()
	if err := l.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
}

// newTestLookup is startTestLookup without the Start, for tests that
// change the registry's clock first.
func newTestLookup(t testing.TB, configure func(*Options)) *Lookup {
	t.Helper()
	opts := NewOptions()
	opts.TCPAddress = "127.0.0.1:0"
	opts.HTTPAddress = "127.0.0.1:0"
	opts.BroadcastAddress = testBroadcastAddress
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if configure != nil {
		configure(opts)
	}
	l, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

// waitFor polls cond every few milliseconds until it holds, or fails the
// test with what after ioTimeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", ioTimeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeClock is a registry clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// v1Client is a raw V1 connection, for sending exact bytes.
type v1Client struct {
	t    testing.TB
	conn *net.TCPConn
	r    *bufio.Reader
}

// dialRaw connects without sending the magic.
func dialRaw(t testing.TB, addr net.Addr) *v1Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr.String(), ioTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &v1Client{t: t, conn: conn.(*net.TCPConn), r: bufio.NewReader(conn)}
}

// dialV1 connects and sends the V1 magic.
func dialV1(t testing.TB, addr net.Addr) *v1Client {
	t.Helper()
	c := dialRaw(t, addr)
	c.send([]byte(protocol.MagicV1))
	return c
}

func (c *v1Client) send(b []byte) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(ioTimeout))
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// readReply reads one V1 reply.
func (c *v1Client) readReply() (string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	data, err := protocol.ReadV1Response(c.r, 1<<20)
	return string(data), err
}

func (c *v1Client) mustRead() string {
	c.t.Helper()
	reply, err := c.readReply()
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return reply
}

// command sends one line and returns the reply.
func (c *v1Client) command(line string) string {
	c.t.Helper()
	c.send([]byte(line + "\n"))
	return c.mustRead()
}

// mustCommand sends one line and fails unless the reply is OK.
func (c *v1Client) mustCommand(line string) {
	c.t.Helper()
	if reply := c.command(line); reply != "OK" {
		c.t.Fatalf("%s: got %q, want OK", line, reply)
	}
}

// identify sends IDENTIFY with the given peer and fails unless the reply
// is the lookup's JSON.
func (c *v1Client) identify(p peerInfo) string {
	c.t.Helper()
	c.send(identifyCommand(p))
	reply := c.mustRead()
	if !strings.HasPrefix(reply, "{") {
		c.t.Fatalf("IDENTIFY: got %q", reply)
	}
	return reply
}

// expectClosed fails unless the server has closed the connection, reading
// nothing more.
func (c *v1Client) expectClosed() {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	b, err := c.r.ReadByte()
	if err == nil {
		c.t.Fatalf("expected the connection closed, read %q", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("expected the connection closed, it is still open")
	}
}

// identifyBody is a broker's IDENTIFY JSON, with its topology when set.
func identifyBody(p peerInfo) []byte {
	fields := map[string]any{
		"broadcast_address": p.BroadcastAddress,
		"tcp_port":          p.TCPPort,
		"http_port":         p.HTTPPort,
		"version":           p.Version,
		"hostname":          p.Hostname,
	}
	if p.TopologyZone != "" || p.TopologyRegion != "" {
		fields["topology_zone"], fields["topology_region"] = p.TopologyZone, p.TopologyRegion
	}
	body, _ := json.Marshal(fields)
	return body
}

func identifyCommand(p peerInfo) []byte {
	return protocol.AppendCommand(nil, "IDENTIFY", identifyBody(p))
}

// withSize is a command line with a raw size prefix and body.
func withSize(line string, size uint32, body []byte) []byte {
	b := []byte(line + "\n")
	b = binary.BigEndian.AppendUint32(b, size)
	return append(b, body...)
}

// testPeer is a broker description for IDENTIFY.
func testPeer(name string, tcpPort int) peerInfo {
	return peerInfo{
		BroadcastAddress: name,
		Hostname:         name + ".local",
		TCPPort:          tcpPort,
		HTTPPort:         tcpPort + 1,
		Version:          protocol.NSQVersion,
	}
}

// httpResponse is what a test reads back from the HTTP API.
type httpResponse struct {
	status int
	header http.Header
	body   string
}

var testHTTPClient = &http.Client{
	Timeout: ioTimeout,
	// Keep redirects visible, as /debug/pprof/ answers with one.
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func doHTTP(t testing.TB, method, url string) httpResponse {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	resp, err := testHTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return httpResponse{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func httpURL(l *Lookup, pathAndQuery string) string {
	return "http://" + l.HTTPAddr().String() + pathAndQuery
}

func get(t testing.TB, l *Lookup, pathAndQuery string) httpResponse {
	t.Helper()
	return doHTTP(t, http.MethodGet, httpURL(l, pathAndQuery))
}

func post(t testing.TB, l *Lookup, pathAndQuery string) httpResponse {
	t.Helper()
	return doHTTP(t, http.MethodPost, httpURL(l, pathAndQuery))
}

// getJSON GETs a 200 JSON reply into v.
func getJSON(t testing.TB, l *Lookup, pathAndQuery string, v any) {
	t.Helper()
	resp := get(t, l, pathAndQuery)
	if resp.status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", pathAndQuery, resp.status, resp.body)
	}
	if err := json.Unmarshal([]byte(resp.body), v); err != nil {
		t.Fatalf("GET %s: %v in %s", pathAndQuery, err, resp.body)
	}
}

// lookupReply is /lookup's body.
type lookupReply struct {
	Channels  []string   `json:"channels"`
	Producers []peerInfo `json:"producers"`
}

// lookupTopic returns /lookup?topic=, and false on 404.
func lookupTopic(t testing.TB, l *Lookup, topic string) (lookupReply, bool) {
	t.Helper()
	resp := get(t, l, "/lookup?topic="+escape(topic))
	if resp.status == http.StatusNotFound {
		return lookupReply{}, false
	}
	if resp.status != http.StatusOK {
		t.Fatalf("/lookup?topic=%s: %d %s", topic, resp.status, resp.body)
	}
	var r lookupReply
	if err := json.Unmarshal([]byte(resp.body), &r); err != nil {
		t.Fatalf("/lookup: %v", err)
	}
	return r, true
}

// producerNames are the broadcast addresses of producers.
func producerNames(ps []peerInfo) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.BroadcastAddress)
	}
	return out
}

func topicsOf(t testing.TB, l *Lookup) []string {
	t.Helper()
	var r struct {
		Topics []string `json:"topics"`
	}
	getJSON(t, l, "/topics", &r)
	return r.Topics
}

func channelsOf(t testing.TB, l *Lookup, topic string) []string {
	t.Helper()
	var r struct {
		Channels []string `json:"channels"`
	}
	getJSON(t, l, "/channels?topic="+escape(topic), &r)
	return r.Channels
}

func nodesOf(t testing.TB, l *Lookup) []nodeInfo {
	t.Helper()
	var r struct {
		Producers []nodeInfo `json:"producers"`
	}
	getJSON(t, l, "/nodes", &r)
	return r.Producers
}

// escape escapes a name for a query string ("#" would end it).
func escape(s string) string { return strings.ReplaceAll(s, "#", "%23") }
