package lookup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"

	"wren/protocol"
)

// The tests here run the same exchanges against wren and a real
// nsqlookupd and compare the answers. They are skipped unless
// NSQLOOKUPD_REFERENCE_BIN names an nsqlookupd binary built from NSQ's
// master (v1.3.0 lacks the topology_zone and topology_region of PR #1301
// in /lookup, /nodes and /debug), e.g.
//
//	NSQLOOKUPD_REFERENCE_BIN=/tmp/nsqref/bin/nsqlookupd go test -run Reference ./lookup

// referenceLookup is a running nsqlookupd.
type referenceLookup struct {
	tcpAddr, httpAddr net.Addr
}

func startReference(t *testing.T) *referenceLookup {
	t.Helper()
	bin := os.Getenv("NSQLOOKUPD_REFERENCE_BIN")
	if bin == "" {
		t.Skip("set NSQLOOKUPD_REFERENCE_BIN to compare with nsqlookupd")
	}
	tcpAddr, httpAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	cmd := exec.Command(bin,
		"--tcp-address="+tcpAddr.String(),
		"--http-address="+httpAddr.String(),
		"--broadcast-address="+testBroadcastAddress,
		"--log-level=error")
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	waitFor(t, "nsqlookupd to answer /ping", func() bool {
		resp, err := testHTTPClient.Get("http://" + httpAddr.String() + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return &referenceLookup{tcpAddr: tcpAddr, httpAddr: httpAddr}
}

// freeLoopbackAddr returns a loopback address that was free a moment ago.
func freeLoopbackAddr(t *testing.T) net.Addr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr()
}

// exchange sends one case's bytes on a new connection, closes the sending
// side so that the server ends the connection, and returns every reply.
func exchange(t *testing.T, addr net.Addr, tc v1Case) []string {
	t.Helper()
	c := dialRaw(t, addr)
	if !tc.noMagic {
		c.send([]byte(protocol.MagicV1))
	}
	c.send([]byte(tc.send))
	// The server may have closed already (bad magic).
	_ = c.conn.CloseWrite()
	var replies []string
	for {
		reply, err := c.readReply()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no EOF after replies %q", replies)
			}
			return replies
		}
		replies = append(replies, normalizeVolatile(reply))
	}
}

var (
	portField   = regexp.MustCompile(`"(tcp|http)_port":\d+`)
	remotePorts = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	lastUpdate  = regexp.MustCompile(`"last_update":\d+`)
	tombstoneAt = regexp.MustCompile(`"tombstoned_at":\d+`) // not the negative zero time
)

// normalizeVolatile blanks what differs between two servers started side
// by side: their own ports, the peers' remote ports and clock readings.
func normalizeVolatile(s string) string {
	s = remotePorts.ReplaceAllString(s, "127.0.0.1:PORT")
	s = lastUpdate.ReplaceAllString(s, `"last_update":0`)
	s = tombstoneAt.ReplaceAllString(s, `"tombstoned_at":1`)
	return s
}

func TestReferenceV1(t *testing.T) {
	ref := startReference(t)
	l := startTestLookup(t, nil)
	for _, tc := range v1Cases() {
		if tc.differs != "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			want := exchange(t, ref.tcpAddr, tc)
			got := exchange(t, l.TCPAddr(), tc)
			for i := range want {
				want[i] = portField.ReplaceAllString(want[i], `"${1}_port":0`)
			}
			for i := range got {
				got[i] = portField.ReplaceAllString(got[i], `"${1}_port":0`)
			}
			if !slices.Equal(got, want) {
				t.Errorf("wren:\n  %q\nnsqlookupd:\n  %q", got, want)
			}
		})
	}
}

// TestReferenceHTTP builds the golden scenario on both servers, then sends
// the same requests to both, mutating ones included, and compares status,
// headers and bodies. Lists nsqlookupd returns in map order are sorted
// before comparing.
func TestReferenceHTTP(t *testing.T) {
	ref := startReference(t)
	l := startTestLookup(t, nil)
	servers := []struct {
		name     string
		tcp      net.Addr
		httpBase string
	}{
		{"nsqlookupd", ref.tcpAddr, "http://" + ref.httpAddr.String()},
		{"wren", l.TCPAddr(), "http://" + l.HTTPAddr().String()},
	}
	for _, s := range servers {
		a := dialV1(t, s.tcp)
		a.identify(testPeer("broker-a", 4150))
		b := dialV1(t, s.tcp)
		b.identify(testPeer("broker-b", 4250))
		a.mustCommand("REGISTER orders billing")
		a.mustCommand("REGISTER orders shipping")
		a.mustCommand("REGISTER events")
		b.mustCommand("REGISTER orders billing")
		b.mustCommand("REGISTER live#ephemeral")
		b.mustCommand("REGISTER gone#ephemeral c#ephemeral")
		b.mustCommand("UNREGISTER gone#ephemeral c#ephemeral")
		b.mustCommand("UNREGISTER gone#ephemeral")
		doHTTP(t, http.MethodPost, s.httpBase+"/channel/create?topic=created&channel=manual")
		doHTTP(t, http.MethodPost, s.httpBase+"/topic/tombstone?topic=orders&node=broker-b:4251")
	}
	requests := []struct{ method, path string }{
		{"GET", "/ping"}, {"HEAD", "/ping"}, {"PUT", "/ping"}, {"OPTIONS", "/ping"},
		{"GET", "/info"}, {"GET", "/debug"},
		{"GET", "/lookup?topic=orders"}, {"GET", "/lookup?topic=events"}, {"GET", "/lookup?topic=created"},
		{"GET", "/lookup?topic=nope"}, {"GET", "/lookup"}, {"GET", "/lookup?topic=%zz"}, {"GET", "/lookup?topic="},
		// Not /lookup?topic=*: nsqlookupd shows or hides broker-b
		// depending on which of its producers map order yields first.
		{"GET", "/channels?topic=*"},
		{"GET", "/topics"}, {"GET", "/channels?topic=orders"}, {"GET", "/channels"}, {"GET", "/nodes"},
		{"GET", "/nope"}, {"GET", "/topic/create"}, {"GET", "/lookup/"}, {"GET", "/debug/pprof/"},
		{"GET", "/debug/pprof/allocs"}, {"GET", "/debug/pprof/mutex"}, {"GET", "/debug/pprof/trace"},
		{"POST", "/topic/create"}, {"POST", "/topic/create?topic=a*"}, {"POST", "/topic/create?topic=new"},
		{"POST", "/channel/create?topic=new"}, {"POST", "/channel/create?topic=new&channel=c*"},
		{"POST", "/channel/create?topic=new&channel=c"}, {"POST", "/channel/delete?topic=new&channel=zz"},
		{"POST", "/channel/delete?topic=new&channel=c"}, {"POST", "/channel/delete?topic=new"},
		{"POST", "/topic/tombstone?topic=events"}, {"POST", "/topic/tombstone?topic=events&node=broker-a:4151"},
		{"GET", "/lookup?topic=events"}, {"GET", "/nodes"},
		{"POST", "/topic/delete?topic=orders"}, {"POST", "/topic/delete"},
		{"GET", "/topics"}, {"GET", "/lookup?topic=orders"}, {"GET", "/nodes"}, {"GET", "/debug"},
	}
	for _, req := range requests {
		want := doHTTP(t, req.method, servers[0].httpBase+req.path)
		got := doHTTP(t, req.method, servers[1].httpBase+req.path)
		what := req.method + " " + req.path
		if got.status != want.status {
			t.Errorf("%s: status %d, nsqlookupd %d", what, got.status, want.status)
		}
		for _, h := range []string{"Content-Type", "X-Nsq-Content-Type", "Allow", "Location", "Content-Length"} {
			if got.header.Get(h) != want.header.Get(h) {
				t.Errorf("%s: %s %q, nsqlookupd %q", what, h, got.header.Get(h), want.header.Get(h))
			}
		}
		if g, w := canonicalBody(t, got.body), canonicalBody(t, want.body); g != w {
			t.Errorf("%s: body\n  %s\nnsqlookupd:\n  %s", what, g, w)
		}
	}
}

// canonicalBody normalises volatile values and, for JSON, the order of
// lists, keeping /nodes' topics and tombstones paired.
func canonicalBody(t *testing.T, body string) string {
	t.Helper()
	body = normalizeVolatile(body)
	var v any
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.Decode(new(any)) != io.EOF {
		return body
	}
	out, err := json.Marshal(sortLists(v))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func sortLists(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = sortLists(e)
		}
		topics, ok1 := v["topics"].([]any)
		tombstones, ok2 := v["tombstones"].([]any)
		if ok1 && ok2 && len(topics) == len(tombstones) {
			pairs := make([]string, len(topics))
			for i := range topics {
				pairs[i] = fmt.Sprint(topics[i], "=", tombstones[i])
			}
			slices.Sort(pairs)
			v["topics"] = pairs
			delete(v, "tombstones")
		}
		return v
	case []any:
		keys := make([]string, len(v))
		for i, e := range v {
			v[i] = sortLists(e)
			b, _ := json.Marshal(v[i])
			keys[i] = string(b)
		}
		slices.Sort(keys)
		return keys
	}
	return v
}

// TestReferenceNSQDRegisters runs a real nsqd against wren's registry:
// nsqd must identify, register its topics and channels, and unregister
// them, and /lookup must lead to it. It is skipped unless NSQD_REFERENCE_BIN
// names an nsqd v1.3.0 binary.
func TestReferenceNSQDRegisters(t *testing.T) {
	bin := os.Getenv("NSQD_REFERENCE_BIN")
	if bin == "" {
		t.Skip("set NSQD_REFERENCE_BIN to run nsqd against the registry")
	}
	l := startTestLookup(t, nil)
	tcpAddr, httpAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	cmd := exec.Command(bin,
		"--tcp-address="+tcpAddr.String(),
		"--http-address="+httpAddr.String(),
		"--https-address=",
		"--broadcast-address=nsqd-under-test",
		"--lookupd-tcp-address="+l.TCPAddr().String(),
		"--data-path="+t.TempDir(),
		"--log-level=error")
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	nsqdHTTP := "http://" + httpAddr.String()
	waitFor(t, "nsqd to identify", func() bool { return len(nodesOf(t, l)) == 1 })
	doHTTP(t, http.MethodPost, nsqdHTTP+"/topic/create?topic=orders")
	doHTTP(t, http.MethodPost, nsqdHTTP+"/channel/create?topic=orders&channel=billing")
	waitFor(t, "nsqd to register orders/billing", func() bool {
		r, ok := lookupTopic(t, l, "orders")
		return ok && slices.Equal(r.Channels, []string{"billing"}) && len(r.Producers) == 1
	})
	r, _ := lookupTopic(t, l, "orders")
	if p := r.Producers[0]; p.BroadcastAddress != "nsqd-under-test" || p.HTTPPort != httpAddr.(*net.TCPAddr).Port || p.Version != "1.3.0" {
		t.Fatalf("producer %+v", p)
	}
	doHTTP(t, http.MethodPost, nsqdHTTP+"/topic/delete?topic=orders")
	waitFor(t, "nsqd to unregister orders", func() bool {
		r, ok := lookupTopic(t, l, "orders")
		return ok && len(r.Producers) == 0
	})
	_ = cmd.Process.Kill()
	waitFor(t, "nsqd's registrations to go with its connection", func() bool { return len(nodesOf(t, l)) == 0 })
}
