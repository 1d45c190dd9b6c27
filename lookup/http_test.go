package lookup

import (
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const (
	jsonContentType = "application/json; charset=utf-8"
	nsqContentType  = "nsq; version=1.0"
)

// Replies and headers as nsqlookupd v1.3.0 gives them.
func TestHTTPReplies(t *testing.T) {
	l := startTestLookup(t, nil)
	tests := []struct {
		method, path string
		status       int
		body         string // "" for an empty body; "*" for any
		contentType  string // "" for none
		nsqHeader    bool
		header       map[string]string
	}{
		{method: "GET", path: "/ping", status: 200, body: "OK", contentType: "text/plain; charset=utf-8"},
		{method: "GET", path: "/info", status: 200, body: `{"version":"1.3.0"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/topics", status: 200, body: `{"topics":[]}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/channels?topic=x", status: 200, body: `{"channels":[]}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/channels", status: 400, body: `{"message":"MISSING_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/lookup", status: 400, body: `{"message":"MISSING_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/lookup?topic=x", status: 404, body: `{"message":"TOPIC_NOT_FOUND"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/lookup?topic=%zz", status: 400, body: `{"message":"INVALID_REQUEST"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/nodes", status: 200, body: `{"producers":[]}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/debug", status: 200, body: `{}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/nope", status: 404, body: `{"message":"NOT_FOUND"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "GET", path: "/topic/create", status: 405, body: `{"message":"METHOD_NOT_ALLOWED"}`, contentType: jsonContentType, nsqHeader: true, header: map[string]string{"Allow": "OPTIONS, POST"}},
		{method: "HEAD", path: "/ping", status: 405, contentType: jsonContentType, nsqHeader: true, header: map[string]string{"Allow": "GET, OPTIONS"}},
		{method: "PUT", path: "/ping", status: 405, body: `{"message":"METHOD_NOT_ALLOWED"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/topic/create", status: 400, body: `{"message":"MISSING_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/topic/create?topic=a*", status: 400, body: `{"message":"INVALID_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/topic/create?topic=", status: 400, body: `{"message":"INVALID_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/topic/create?topic=a", status: 200, nsqHeader: true},
		{method: "POST", path: "/topic/delete", status: 400, body: `{"message":"MISSING_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/topic/delete?topic=nothere", status: 200, nsqHeader: true},
		{method: "POST", path: "/channel/create?topic=b", status: 400, body: `{"message":"MISSING_ARG_CHANNEL"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/channel/create?channel=b", status: 400, body: `{"message":"MISSING_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/channel/create?topic=b*&channel=c", status: 400, body: `{"message":"INVALID_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/channel/create?topic=b&channel=c*", status: 400, body: `{"message":"INVALID_ARG_CHANNEL"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/channel/create?topic=b&channel=c", status: 200, nsqHeader: true},
		{method: "POST", path: "/channel/delete?topic=b&channel=zz", status: 404, body: `{"message":"CHANNEL_NOT_FOUND"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/channel/delete?topic=b&channel=c", status: 200, nsqHeader: true},
		{method: "POST", path: "/topic/tombstone?topic=a", status: 400, body: `{"message":"MISSING_ARG_NODE"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/topic/tombstone?node=x:1", status: 400, body: `{"message":"MISSING_ARG_TOPIC"}`, contentType: jsonContentType, nsqHeader: true},
		{method: "POST", path: "/topic/tombstone?topic=a&node=x:1", status: 200, nsqHeader: true},
		{method: "GET", path: "/debug/pprof", status: 200, body: "*", contentType: "text/html; charset=utf-8"},
		{method: "GET", path: "/debug/pprof/", status: 301, body: "*", contentType: "text/html; charset=utf-8", header: map[string]string{"Location": "/debug/pprof"}},
		{method: "GET", path: "/debug/pprof/goroutine?debug=1", status: 200, body: "*", contentType: "text/plain; charset=utf-8"},
		{method: "GET", path: "/debug/pprof/allocs", status: 404, body: `{"message":"NOT_FOUND"}`, contentType: jsonContentType, nsqHeader: true},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp := doHTTP(t, tt.method, httpURL(l, tt.path))
			if resp.status != tt.status {
				t.Errorf("status %d, want %d", resp.status, tt.status)
			}
			if tt.body != "*" && resp.body != tt.body {
				t.Errorf("body %q, want %q", resp.body, tt.body)
			}
			if got := resp.header.Get("Content-Type"); got != tt.contentType {
				t.Errorf("Content-Type %q, want %q", got, tt.contentType)
			}
			if got := resp.header.Get("X-NSQ-Content-Type"); (got == nsqContentType) != tt.nsqHeader || (got != "" && got != nsqContentType) {
				t.Errorf("X-NSQ-Content-Type %q, want it: %v", got, tt.nsqHeader)
			}
			for k, v := range tt.header {
				if got := resp.header.Get(k); got != v {
					t.Errorf("%s %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHTTPCreateAndDelete(t *testing.T) {
	l := startTestLookup(t, nil)
	post(t, l, "/topic/create?topic=made")
	post(t, l, "/channel/create?topic=other&channel=c1")
	post(t, l, "/channel/create?topic=other&channel=c2")
	if got := topicsOf(t, l); !slices.Equal(got, []string{"made", "other"}) {
		t.Fatalf("/topics = %v", got)
	}
	// A topic created over HTTP has no producers, but /lookup finds it.
	r, ok := lookupTopic(t, l, "other")
	if !ok || !slices.Equal(r.Channels, []string{"c1", "c2"}) || r.Producers == nil || len(r.Producers) != 0 {
		t.Fatalf("/lookup?topic=other = %+v, %v", r, ok)
	}

	if resp := post(t, l, "/channel/delete?topic=other&channel=c1"); resp.status != 200 {
		t.Fatalf("channel/delete: %d %s", resp.status, resp.body)
	}
	if got := channelsOf(t, l, "other"); !slices.Equal(got, []string{"c2"}) {
		t.Fatalf("/channels = %v", got)
	}

	// Deleting a topic removes its channels and the producers' claims;
	// a producer registers it again on its next REGISTER.
	c := dialV1(t, l.TCPAddr())
	c.identify(testPeer("a", 4150))
	c.mustCommand("REGISTER other c2")
	post(t, l, "/topic/delete?topic=other")
	if got := topicsOf(t, l); !slices.Equal(got, []string{"made"}) {
		t.Fatalf("/topics after delete = %v", got)
	}
	if got := channelsOf(t, l, "other"); len(got) != 0 {
		t.Fatalf("/channels after delete = %v", got)
	}
	if nodes := nodesOf(t, l); len(nodes) != 1 || len(nodes[0].Topics) != 0 {
		t.Fatalf("/nodes after delete = %+v", nodes)
	}
}

// The golden files pin the JSON of each query endpoint for one fixed
// scenario, on a registry with a stopped clock. Remote ports vary from
// run to run and are replaced by PORT. broker-a tells its topology (NSQ
// master's topology_zone and topology_region); broker-b does not.
func TestGoldenReplies(t *testing.T) {
	l, clock := startClockedLookup(t, nil)
	a := dialV1(t, l.TCPAddr())
	placed := testPeer("broker-a", 4150)
	placed.TopologyZone, placed.TopologyRegion = "eu-1a", "eu"
	a.identify(placed)
	b := dialV1(t, l.TCPAddr())
	b.identify(testPeer("broker-b", 4250))
	a.mustCommand("REGISTER orders billing")
	a.mustCommand("REGISTER orders shipping")
	a.mustCommand("REGISTER events")
	b.mustCommand("REGISTER orders billing")
	b.mustCommand("REGISTER live#ephemeral")
	post(t, l, "/channel/create?topic=created&channel=manual")
	clock.Advance(1500 * time.Millisecond)
	post(t, l, "/topic/tombstone?topic=orders&node=broker-b:4251")

	remotePort := regexp.MustCompile(`127\.0\.0\.1:\d+`)
	for _, tt := range []struct{ name, path string }{
		{"lookup", "/lookup?topic=orders"},
		{"topics", "/topics"},
		{"channels", "/channels?topic=orders"},
		{"nodes", "/nodes"},
		{"info", "/info"},
		{"debug", "/debug"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := get(t, l, tt.path)
			if resp.status != http.StatusOK {
				t.Fatalf("GET %s: %d %s", tt.path, resp.status, resp.body)
			}
			got := remotePort.ReplaceAllString(resp.body, "127.0.0.1:PORT") + "\n"
			checkGolden(t, filepath.Join("testdata", tt.name+".golden"), got)
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update if intended):\ngot:  %s\nwant: %s", path, strings.TrimSpace(got), strings.TrimSpace(string(want)))
	}
}
