package broker

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

const nsqContentType = "nsq; version=1.0"

// checkGolden compares got with testdata/name, or rewrites it with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -run %s -update rewrites it)\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// indentJSON pretty-prints JSON keeping its key order, so golden files are
// readable and still show the order nsqd uses.
func indentJSON(t *testing.T, raw []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		t.Fatalf("indenting %s: %v", raw, err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

type rewrite struct {
	re   *regexp.Regexp
	with string
}

func applyRewrites(s string, rs []rewrite) string {
	for _, r := range rs {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return s
}

// volatileStats are the parts of /stats that differ from run to run.
var volatileStats = []rewrite{
	{regexp.MustCompile(`"start_time":\d+`), `"start_time":0`},
	{regexp.MustCompile(`"connect_ts":\d+`), `"connect_ts":0`},
	{regexp.MustCompile(`"remote_address":"127\.0\.0\.1:\d+"`), `"remote_address":"127.0.0.1:PORT"`},
	{regexp.MustCompile(`nsqd v1\.3\.0 \(built w/[^)]*\)`), `nsqd v1.3.0 (built w/GO)`},
	{regexp.MustCompile(`(?m)^start_time .*$`), `start_time TIME`},
	{regexp.MustCompile(`(?m)^uptime .*$`), `uptime UPTIME`},
	{regexp.MustCompile(`connected: \S+`), `connected: D`},
	{regexp.MustCompile(`(prod-host|cons-host):\d+ `), `$1:PORT `},
}

func TestHTTPRoutingAndHeaders(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	cases := []struct {
		method, path string
		status       int
		body         string
		contentType  string
		allow        string
	}{
		{"GET", "/ping", 200, "OK", "text/plain; charset=utf-8", ""},
		{"GET", "/nope", 404, `{"message":"NOT_FOUND"}`, "application/json; charset=utf-8", ""},
		{"GET", "/config/", 404, `{"message":"NOT_FOUND"}`, "application/json; charset=utf-8", ""},
		{"POST", "/ping", 405, `{"message":"METHOD_NOT_ALLOWED"}`, "application/json; charset=utf-8", "GET, OPTIONS"},
		{"GET", "/pub?topic=t", 405, `{"message":"METHOD_NOT_ALLOWED"}`, "application/json; charset=utf-8", "OPTIONS, POST"},
		{"GET", "/topic/create?topic=t", 405, `{"message":"METHOD_NOT_ALLOWED"}`, "application/json; charset=utf-8", "OPTIONS, POST"},
		{"DELETE", "/config/x", 405, `{"message":"METHOD_NOT_ALLOWED"}`, "application/json; charset=utf-8", "GET, OPTIONS, PUT"},
		// nsqd v1.3.0 no longer routes the pre-1.0 GET endpoints.
		{"GET", "/create_topic?topic=t", 404, `{"message":"NOT_FOUND"}`, "application/json; charset=utf-8", ""},
		{"POST", "/topic/create?topic=t", 200, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := httpDo(t, b, tc.method, tc.path, nil)
			if r.status != tc.status || r.body != tc.body {
				t.Errorf("got %d %q, want %d %q", r.status, r.body, tc.status, tc.body)
			}
			if got := r.header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type %q, want %q", got, tc.contentType)
			}
			if got := r.header.Get("X-NSQ-Content-Type"); got != nsqContentType {
				t.Errorf("X-NSQ-Content-Type %q, want %q", got, nsqContentType)
			}
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestHTTPPingUnhealthy(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	b.setHealth(errors.New("disk full"))
	defer b.setHealth(nil)
	r := httpDo(t, b, "GET", "/ping", nil)
	if r.status != 500 || r.body != "NOK - disk full" {
		t.Errorf("GET /ping = %d %q, want 500 %q", r.status, r.body, "NOK - disk full")
	}
	var stats struct{ Health string }
	httpJSON(t, b.HTTPAddr().String(), "/stats?format=json", &stats)
	if stats.Health != "NOK - disk full" {
		t.Errorf("/stats health %q", stats.Health)
	}
}

// normaliseInfo checks /info's machine-dependent fields, then replaces
// them so the rest can be compared with a golden file.
func normaliseInfo(t *testing.T, body string, tcpPort, httpPort int) []byte {
	t.Helper()
	var info infoResponse
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	host, _ := os.Hostname()
	if info.Hostname != host || info.TCPPort != tcpPort || info.HTTPPort != httpPort {
		t.Errorf("/info hostname %q tcp_port %d http_port %d, want %q %d %d", info.Hostname, info.TCPPort, info.HTTPPort, host, tcpPort, httpPort)
	}
	if d := time.Since(time.Unix(info.StartTime, 0)); d < 0 || d > time.Minute {
		t.Errorf("/info start_time %d is %s ago", info.StartTime, d)
	}
	return []byte(applyRewrites(body, []rewrite{
		{regexp.MustCompile(`"hostname":"[^"]*"`), `"hostname":"HOST"`},
		{regexp.MustCompile(`"(tcp|http)_port":\d+`), `"${1}_port":0`},
		{regexp.MustCompile(`"start_time":\d+`), `"start_time":0`},
	}))
}

func TestHTTPInfoGolden(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	r := httpDo(t, b, "GET", "/info", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("GET /info: %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
	}
	got := normaliseInfo(t, r.body, tcpPort(b.TCPAddr()), tcpPort(b.HTTPAddr()))
	checkGolden(t, "info.golden", indentJSON(t, got))
}

func TestHTTPPub(t *testing.T) {
	b := startHTTPTestBroker(t, func(o *Options) {
		o.MaxMsgSize = 100
		o.MaxBodySize = 1000
	})
	big := strings.Repeat("x", 101)
	cases := []struct {
		name    string
		path    string
		body    string
		chunked bool // hide the length so the body limit, not Content-Length, decides
		status  int
		want    string
	}{
		{"ok", "/pub?topic=pub_ok", "hello", false, 200, "OK"},
		{"exactly max size", "/pub?topic=pub_ok", strings.Repeat("x", 100), false, 200, "OK"},
		{"defer", "/pub?topic=pub_ok&defer=1000", "later", false, 200, "OK"},
		{"defer at max", "/pub?topic=pub_ok&defer=3600000", "later", false, 200, "OK"},
		{"empty body", "/pub?topic=pub_ok", "", false, 400, "MSG_EMPTY"},
		{"empty body before missing topic", "/pub", "", false, 400, "MSG_EMPTY"},
		{"too big", "/pub?topic=pub_ok", big, false, 413, "MSG_TOO_BIG"},
		{"too big chunked", "/pub?topic=pub_ok", big, true, 413, "MSG_TOO_BIG"},
		{"too big before missing topic", "/pub", big, false, 413, "MSG_TOO_BIG"},
		{"missing topic", "/pub", "x", false, 400, "MISSING_ARG_TOPIC"},
		{"empty topic", "/pub?topic=", "x", false, 400, "INVALID_TOPIC"},
		{"invalid topic", "/pub?topic=bad!", "x", false, 400, "INVALID_TOPIC"},
		{"topic too long", "/pub?topic=" + strings.Repeat("t", 65), "x", false, 400, "INVALID_TOPIC"},
		{"bad query", "/pub?topic=%zz", "x", false, 400, "INVALID_REQUEST"},
		{"defer not a number", "/pub?topic=pub_ok&defer=soon", "x", false, 400, "INVALID_DEFER"},
		{"defer negative", "/pub?topic=pub_ok&defer=-1", "x", false, 400, "INVALID_DEFER"},
		{"defer past max-req-timeout", "/pub?topic=pub_ok&defer=3600001", "x", false, 400, "INVALID_DEFER"},
		{"defer overflowing", "/pub?topic=pub_ok&defer=9223372036854775807", "x", false, 400, "INVALID_DEFER"},
		{"invalid topic before bad defer", "/pub?topic=bad!&defer=x", "x", false, 400, "INVALID_TOPIC"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body)
			}
			r := httpDo(t, b, "POST", tc.path, body)
			got := r.body
			if r.status != 200 {
				got = errorMessage(t, r)
			} else if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if r.status != tc.status || got != tc.want {
				t.Errorf("got %d %q, want %d %q", r.status, got, tc.status, tc.want)
			}
		})
	}
	topic := b.ExistingTopic("pub_ok")
	if topic == nil {
		t.Fatal("topic pub_ok not created")
	}
	if n := topic.messageCount.Load(); n != 4 {
		t.Errorf("pub_ok message_count %d, want 4", n)
	}
	if b.ExistingTopic("bad!") != nil {
		t.Error("invalid topic was created")
	}
}

func TestHTTPPubDeferred(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	if r := httpDo(t, b, "POST", "/topic/create?topic=d", nil); r.status != 200 {
		t.Fatalf("create topic: %d %s", r.status, r.body)
	}
	if r := httpDo(t, b, "POST", "/channel/create?topic=d&channel=c", nil); r.status != 200 {
		t.Fatalf("create channel: %d %s", r.status, r.body)
	}
	if r := httpDo(t, b, "POST", "/pub?topic=d&defer=60000", strings.NewReader("later")); r.status != 200 {
		t.Fatalf("pub: %d %s", r.status, r.body)
	}
	ch := b.ExistingTopic("d").ExistingChannel("c")
	pollUntil(t, 5*time.Second, "the deferred message", func() bool { return ch.deferredCount() == 1 })
	if d := ch.Depth(); d != 0 {
		t.Errorf("depth %d, want 0 while deferred", d)
	}
}

// errorMessage decodes a {"message":...} error body and checks its headers.
func errorMessage(t *testing.T, r httpResult) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("error Content-Type %q", ct)
	}
	var e struct{ Message string }
	if err := json.Unmarshal([]byte(r.body), &e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	return e.Message
}

// mpubBody builds a binary MPUB body from a count and raw sizes, so tests
// can lie about either.
func mpubBody(count int32, msgs ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(count))
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(m)))
		b = append(b, m...)
	}
	return b
}

func repeated(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestHTTPMPub(t *testing.T) {
	b := startHTTPTestBroker(t, func(o *Options) {
		o.MaxMsgSize = 100
		o.MaxBodySize = 1000
	})
	line := strings.Repeat("y", 49) + "\n"
	cases := []struct {
		name    string
		query   string
		body    []byte
		chunked bool
		status  int
		want    string
		msgs    uint64 // messages the topic gains
	}{
		{"text", "", []byte("a\nb\nc"), false, 200, "OK", 3},
		{"text drops empty lines", "", []byte("\na\n\n\nb\n"), false, 200, "OK", 2},
		{"text keeps carriage returns", "&binary=false", []byte("a\r\n"), false, 200, "OK", 1},
		{"text empty body", "", nil, false, 200, "OK", 0},
		{"text message too big", "", []byte("ok\n" + strings.Repeat("z", 101) + "\n"), false, 413, "MSG_TOO_BIG", 0},
		{"text body too big", "", []byte(strings.Repeat(line, 21)), false, 413, "BODY_TOO_BIG", 0},
		{"text body too big chunked", "", []byte(strings.Repeat(line, 21)), true, 413, "BODY_TOO_BIG", 0},
		{"text body at limit", "", []byte(strings.Repeat(line, 20)), true, 200, "OK", 20},
		{"binary", "&binary=true", mpubBody(2, "one", "two"), false, 200, "OK", 2},
		{"binary=1", "&binary=1", mpubBody(1, "one"), false, 200, "OK", 1},
		{"binary unknown value means true", "&binary=yes", mpubBody(1, "one"), false, 200, "OK", 1},
		{"binary trailing bytes ignored", "&binary=true", append(mpubBody(1, "one"), "junk"...), false, 200, "OK", 1},
		{"binary short count", "&binary=true", []byte{0, 0}, false, 413, "BAD_BODY", 0},
		{"binary zero count", "&binary=true", mpubBody(0), false, 413, "BAD_BODY", 0},
		{"binary count over limit", "&binary=true", mpubBody(200, "x"), false, 413, "BAD_BODY", 0},
		{"binary count beyond messages", "&binary=true", mpubBody(2, "one"), false, 413, "BAD_MESSAGE", 0},
		{"binary empty message", "&binary=true", mpubBody(1, ""), false, 413, "BAD_MESSAGE", 0},
		{"binary message too big", "&binary=true", mpubBody(1, strings.Repeat("z", 101)), false, 413, "BAD_MESSAGE", 0},
		{"binary truncated message", "&binary=true", mpubBody(1, "three")[:7], false, 413, "BAD_MESSAGE", 0},
		{"binary body too big", "&binary=true", mpubBody(10, repeated(strings.Repeat("w", 99), 10)...), true, 413, "BODY_TOO_BIG", 0},
		{"binary body at limit", "&binary=true", mpubBody(10, append(repeated(strings.Repeat("w", 99), 9), strings.Repeat("v", 65))...), true, 200, "OK", 10},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("mpub_%d", i)
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body)
			}
			r := httpDo(t, b, "POST", "/mpub?topic="+topic+tc.query, body)
			got := r.body
			if r.status != 200 {
				got = errorMessage(t, r)
			}
			if r.status != tc.status || got != tc.want {
				t.Fatalf("got %d %q, want %d %q", r.status, got, tc.status, tc.want)
			}
			var n uint64
			if tp := b.ExistingTopic(topic); tp != nil {
				n = tp.messageCount.Load()
			}
			if n != tc.msgs {
				t.Errorf("topic got %d messages, want %d", n, tc.msgs)
			}
		})
	}
	for _, tc := range []struct{ path, want string }{
		{"/mpub", "MISSING_ARG_TOPIC"},
		{"/mpub?topic=bad!", "INVALID_TOPIC"},
		{"/mpub?topic=%zz", "INVALID_REQUEST"},
	} {
		r := httpDo(t, b, "POST", tc.path, strings.NewReader("a\n"))
		if got := errorMessage(t, r); r.status != 400 || got != tc.want {
			t.Errorf("POST %s: %d %q, want 400 %q", tc.path, r.status, got, tc.want)
		}
	}
	big := bytes.Repeat([]byte("a\n"), 501)
	if r := httpDo(t, b, "POST", "/mpub?topic=t", bytes.NewReader(big)); r.status != 413 || errorMessage(t, r) != "BODY_TOO_BIG" {
		t.Errorf("Content-Length over max-body-size: %d %s", r.status, r.body)
	}
}

func TestHTTPExiting(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	b.mu.Lock()
	b.exiting = true
	b.mu.Unlock()
	h := newHTTPHandler(b, false)
	for _, path := range []string{"/pub?topic=late", "/mpub?topic=late", "/topic/create?topic=late"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", path, strings.NewReader("x")))
		if rec.Code != 503 || rec.Body.String() != `{"message":"EXITING"}` {
			t.Errorf("POST %s while exiting: %d %s", path, rec.Code, rec.Body)
		}
	}
}

// metadataTopics reads nsqd.dat: topic name → paused, and "topic:channel"
// → paused.
func metadataTopics(t *testing.T, b *Broker) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.opts.DataPath, "nsqd.dat"))
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Topics []struct {
			Name     string
			Paused   bool
			Channels []struct {
				Name   string
				Paused bool
			}
		}
	}
	if err := json.Unmarshal(data, &md); err != nil {
		t.Fatalf("%v in %s", err, data)
	}
	out := map[string]bool{}
	for _, tm := range md.Topics {
		out[tm.Name] = tm.Paused
		for _, cm := range tm.Channels {
			out[tm.Name+":"+cm.Name] = cm.Paused
		}
	}
	return out
}

type apiCase struct {
	name   string
	path   string
	status int
	want   string // error code, or "" for an empty 200
}

func runAPICases(t *testing.T, b *Broker, cases []apiCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httpDo(t, b, "POST", tc.path, nil)
			got := r.body
			if r.status != 200 {
				got = errorMessage(t, r)
			} else if ct := r.header.Get("Content-Type"); ct != "" {
				t.Errorf("Content-Type %q on an empty 200", ct)
			}
			if r.status != tc.status || got != tc.want {
				t.Errorf("POST %s: %d %q, want %d %q", tc.path, r.status, got, tc.status, tc.want)
			}
		})
	}
}

func TestHTTPTopicEndpoints(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	runAPICases(t, b, []apiCase{
		{"create", "/topic/create?topic=a", 200, ""},
		{"create again", "/topic/create?topic=a", 200, ""},
		{"create missing", "/topic/create", 400, "MISSING_ARG_TOPIC"},
		{"create invalid", "/topic/create?topic=bad!", 400, "INVALID_TOPIC"},
		{"create bad query", "/topic/create?topic=%zz", 400, "INVALID_REQUEST"},
		{"pause missing", "/topic/pause", 400, "MISSING_ARG_TOPIC"},
		{"pause invalid is not found", "/topic/pause?topic=bad!", 404, "TOPIC_NOT_FOUND"},
		{"pause unknown", "/topic/pause?topic=nope", 404, "TOPIC_NOT_FOUND"},
		{"pause", "/topic/pause?topic=a", 200, ""},
		{"unpause unknown", "/topic/unpause?topic=nope", 404, "TOPIC_NOT_FOUND"},
		{"empty missing", "/topic/empty", 400, "MISSING_ARG_TOPIC"},
		{"empty invalid", "/topic/empty?topic=bad!", 400, "INVALID_TOPIC"},
		{"empty unknown", "/topic/empty?topic=nope", 404, "TOPIC_NOT_FOUND"},
		{"delete missing", "/topic/delete", 400, "MISSING_ARG_TOPIC"},
		{"delete invalid is not found", "/topic/delete?topic=bad!", 404, "TOPIC_NOT_FOUND"},
		{"delete unknown", "/topic/delete?topic=nope", 404, "TOPIC_NOT_FOUND"},
	})
	topic := b.ExistingTopic("a")
	if topic == nil || !topic.IsPaused() {
		t.Fatal("topic a missing or not paused")
	}
	if md := metadataTopics(t, b); !md["a"] {
		t.Errorf("nsqd.dat does not record the pause: %v", md)
	}

	// Paused, the topic holds what is published; empty drops it.
	httpDo(t, b, "POST", "/pub?topic=a", strings.NewReader("m"))
	if d := topic.Depth(); d != 1 {
		t.Errorf("depth %d after a publish to a paused topic, want 1", d)
	}
	runAPICases(t, b, []apiCase{{"empty", "/topic/empty?topic=a", 200, ""}})
	if d := topic.Depth(); d != 0 {
		t.Errorf("depth %d after empty, want 0", d)
	}

	runAPICases(t, b, []apiCase{{"unpause", "/topic/unpause?topic=a", 200, ""}})
	if topic.IsPaused() {
		t.Error("still paused")
	}
	if md := metadataTopics(t, b); md["a"] {
		t.Errorf("nsqd.dat still records the pause: %v", md)
	}

	runAPICases(t, b, []apiCase{{"delete", "/topic/delete?topic=a", 200, ""}})
	if b.ExistingTopic("a") != nil {
		t.Error("topic a still exists")
	}
	if _, ok := metadataTopics(t, b)["a"]; ok {
		t.Error("nsqd.dat still lists topic a")
	}
}

func TestHTTPChannelEndpoints(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	runAPICases(t, b, []apiCase{{"create topic", "/topic/create?topic=a", 200, ""}})
	// Every /channel/ endpoint checks its arguments the same way.
	for _, action := range []string{"create", "delete", "empty", "pause", "unpause"} {
		p := "/channel/" + action
		runAPICases(t, b, []apiCase{
			{action + " missing topic", p + "?channel=c", 400, "MISSING_ARG_TOPIC"},
			{action + " invalid topic", p + "?topic=bad!&channel=c", 400, "INVALID_ARG_TOPIC"},
			{action + " missing channel", p + "?topic=a", 400, "MISSING_ARG_CHANNEL"},
			{action + " invalid channel", p + "?topic=a&channel=bad!", 400, "INVALID_ARG_CHANNEL"},
			{action + " unknown topic", p + "?topic=nope&channel=c", 404, "TOPIC_NOT_FOUND"},
			{action + " bad query", p + "?topic=%zz&channel=c", 400, "INVALID_REQUEST"},
		})
		if action != "create" {
			runAPICases(t, b, []apiCase{
				{action + " unknown channel", p + "?topic=a&channel=nope", 404, "CHANNEL_NOT_FOUND"},
			})
		}
	}
	if b.ExistingTopic("nope") != nil {
		t.Error("a /channel/ call created its topic")
	}

	runAPICases(t, b, []apiCase{
		{"create", "/channel/create?topic=a&channel=c", 200, ""},
		{"pause", "/channel/pause?topic=a&channel=c", 200, ""},
	})
	ch := b.ExistingTopic("a").ExistingChannel("c")
	if ch == nil || !ch.IsPaused() {
		t.Fatal("channel missing or not paused")
	}
	if md := metadataTopics(t, b); !md["a:c"] {
		t.Errorf("nsqd.dat does not record the channel pause: %v", md)
	}

	httpDo(t, b, "POST", "/pub?topic=a", strings.NewReader("m"))
	pollUntil(t, 5*time.Second, "the message in the channel", func() bool { return ch.Depth() == 1 })
	runAPICases(t, b, []apiCase{{"empty", "/channel/empty?topic=a&channel=c", 200, ""}})
	if d := ch.Depth(); d != 0 {
		t.Errorf("depth %d after empty", d)
	}

	runAPICases(t, b, []apiCase{{"unpause", "/channel/unpause?topic=a&channel=c", 200, ""}})
	if ch.IsPaused() || metadataTopics(t, b)["a:c"] {
		t.Error("unpause not applied or not persisted")
	}
	runAPICases(t, b, []apiCase{{"delete", "/channel/delete?topic=a&channel=c", 200, ""}})
	if b.ExistingTopic("a").ExistingChannel("c") != nil {
		t.Error("channel still exists")
	}
	if _, ok := metadataTopics(t, b)["a:c"]; ok {
		t.Error("nsqd.dat still lists the channel")
	}
}

func TestHTTPConfig(t *testing.T) {
	levels := new(slog.LevelVar)
	b := startHTTPTestBroker(t, func(o *Options) {
		o.LevelVar = levels
		o.NodeID = 617
	})
	get := []struct {
		opt, want, contentType string
	}{
		{"mem_queue_size", "10000", "application/json; charset=utf-8"},
		{"msg_timeout", "60000000000", "application/json; charset=utf-8"},
		{"max_msg_size", "1048576", "application/json; charset=utf-8"},
		{"deflate", "true", "application/json; charset=utf-8"},
		{"tls_required", "0", "application/json; charset=utf-8"},
		{"tls_min_version", "769", "application/json; charset=utf-8"},
		{"id", "617", "application/json; charset=utf-8"},
		{"node_id", "617", "application/json; charset=utf-8"},
		{"log_level", "2", "application/json; charset=utf-8"},
		{"nsqlookupd_tcp_addresses", "[]", "application/json; charset=utf-8"},
		{"auth_http_addresses", "[]", "application/json; charset=utf-8"},
		{"e2e_processing_latency_percentiles", "[]", "application/json; charset=utf-8"},
		// nsqd returns string options as bare text, not JSON.
		{"broadcast_address", "wren-test", "text/plain; charset=utf-8"},
		{"statsd_prefix", "nsq.%s", "text/plain; charset=utf-8"},
	}
	for _, tc := range get {
		r := httpDo(t, b, "GET", "/config/"+tc.opt, nil)
		if r.status != 200 || r.body != tc.want || r.header.Get("Content-Type") != tc.contentType {
			t.Errorf("GET /config/%s: %d %q %q, want 200 %q %q", tc.opt, r.status, r.body, r.header.Get("Content-Type"), tc.want, tc.contentType)
		}
	}
	for _, opt := range []string{"nope", "logger", "level_var", "Logger"} {
		r := httpDo(t, b, "GET", "/config/"+opt, nil)
		if r.status != 400 || errorMessage(t, r) != "INVALID_OPTION" {
			t.Errorf("GET /config/%s: %d %s", opt, r.status, r.body)
		}
	}

	put := []struct {
		name, opt, body string
		status          int
		want            string
	}{
		{"empty body first", "nope", "", 413, `{"message":"INVALID_VALUE"}`},
		{"unknown option", "nope", "x", 400, `{"message":"INVALID_OPTION"}`},
		{"read-only option", "mem_queue_size", "5", 400, `{"message":"INVALID_OPTION"}`},
		{"lookupd not json", "nsqlookupd_tcp_addresses", "127.0.0.1:4160", 400, `{"message":"INVALID_VALUE"}`},
		{"lookupd not an address", "nsqlookupd_tcp_addresses", `["lookupd"]`, 400, `{"message":"INVALID_VALUE"}`},
		{"lookupd", "nsqlookupd_tcp_addresses", `["127.0.0.1:4160","lookupd:4160"]`, 200, `["127.0.0.1:4160","lookupd:4160"]`},
		{"log level unknown", "log_level", "loud", 400, `{"message":"INVALID_VALUE"}`},
		{"log level quoted", "log_level", `"debug"`, 400, `{"message":"INVALID_VALUE"}`},
		{"log level", "log_level", "debug", 200, "1"},
	}
	addrs, changed := b.lookupdTCPAddrs()
	if len(addrs) != 0 {
		t.Fatalf("lookup addresses %q at start", addrs)
	}
	for _, tc := range put {
		t.Run(tc.name, func(t *testing.T) {
			r := httpDo(t, b, "PUT", "/config/"+tc.opt, strings.NewReader(tc.body))
			if r.status != tc.status || r.body != tc.want {
				t.Errorf("PUT /config/%s %q: %d %q, want %d %q", tc.opt, tc.body, r.status, r.body, tc.status, tc.want)
			}
		})
	}
	select {
	case <-changed:
	default:
		t.Error("changing the lookup addresses did not signal the watcher")
	}
	if addrs, _ := b.lookupdTCPAddrs(); strings.Join(addrs, ",") != "127.0.0.1:4160,lookupd:4160" {
		t.Errorf("lookup addresses %q", addrs)
	}
	if r := httpDo(t, b, "GET", "/config/nsqlookupd_tcp_addresses", nil); r.body != `["127.0.0.1:4160","lookupd:4160"]` {
		t.Errorf("GET after PUT: %s", r.body)
	}
	if levels.Level() != slog.LevelDebug {
		t.Errorf("log level %v, want debug", levels.Level())
	}
	if r := httpDo(t, b, "GET", "/config/log_level", nil); r.body != "1" {
		t.Errorf("GET /config/log_level after PUT: %s", r.body)
	}
}

func TestHTTPDebug(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	cases := []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/debug/pprof/", 200, "goroutine"},
		{"GET", "/debug/pprof/goroutine?debug=1", 200, "goroutine profile"},
		{"GET", "/debug/pprof/cmdline", 200, ""},
		{"PUT", "/debug/setblockrate?rate=0", 200, ""},
		{"PUT", "/debug/setblockrate", 400, `invalid block rate : strconv.Atoi: parsing "": invalid syntax`},
		{"POST", "/debug/freememory", 200, ""},
		{"GET", "/debug/freememory", 405, "METHOD_NOT_ALLOWED"},
	}
	for _, tc := range cases {
		r := httpDo(t, b, tc.method, tc.path, nil)
		if r.status != tc.status || !strings.Contains(r.body, tc.contains) {
			t.Errorf("%s %s: %d %.200q, want %d containing %q", tc.method, tc.path, r.status, r.body, tc.status, tc.contains)
		}
	}
}

// writeTestCert writes a certificate for 127.0.0.1 and its key.
func writeTestCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, _ = writeTestCertificates(t, t.TempDir())
	return certFile, keyFile
}

func TestHTTPTLSRequired(t *testing.T) {
	certFile, keyFile := writeTestCert(t)
	for _, tc := range []struct {
		required  TLSRequired
		plainCode int
	}{
		{TLSRequiredEverywhere, 403},
		{TLSRequiredExceptHTTP, 200},
		{TLSNotRequired, 200},
	} {
		t.Run(tc.required.String(), func(t *testing.T) {
			b := startHTTPTestBroker(t, func(o *Options) {
				o.TLSCert, o.TLSKey = certFile, keyFile
				o.TLSRequired = tc.required
				o.HTTPSAddress = "127.0.0.1:0"
			})
			r := httpDo(t, b, "GET", "/ping", nil)
			if r.status != tc.plainCode {
				t.Fatalf("plain GET /ping: %d %s", r.status, r.body)
			}
			if tc.plainCode == 403 {
				want := fmt.Sprintf(`{"message": "TLS_REQUIRED", "https_port": %d}`, tcpPort(b.HTTPSAddr()))
				if r.body != want || r.header.Get("Content-Type") != "application/json; charset=utf-8" || r.header.Get("X-NSQ-Content-Type") != nsqContentType {
					t.Errorf("got %q %v, want %q", r.body, r.header, want)
				}
			}
			client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
			defer client.CloseIdleConnections()
			req, _ := http.NewRequest("GET", "https://"+b.HTTPSAddr().String()+"/ping", nil)
			if r := httpSend(t, client, req); r.status != 200 || r.body != "OK" {
				t.Errorf("HTTPS GET /ping: %d %q", r.status, r.body)
			}
		})
	}
}

// statsScenario builds a fixed state on the broker (or nsqd) at the given
// addresses and returns once it has settled:
//   - topic alpha with channels ch1 (paused) and ch2, a consumer on ch2
//     with RDY 1 holding one message in flight, two messages published
//     over TCP and a deferred one over HTTP;
//   - topic beta, paused, with no channels, holding three messages;
//   - a producer that published to both topics.
func statsScenario(t *testing.T, tcpAddr, httpAddr string) {
	t.Helper()
	for _, p := range []string{
		"/topic/create?topic=alpha",
		"/channel/create?topic=alpha&channel=ch1",
		"/channel/create?topic=alpha&channel=ch2",
		"/channel/pause?topic=alpha&channel=ch1",
		"/topic/create?topic=beta",
		"/topic/pause?topic=beta",
	} {
		if r := httpDoAddr(t, httpAddr, "POST", p, nil); r.status != 200 {
			t.Fatalf("POST %s: %d %s", p, r.status, r.body)
		}
	}
	consumer := dialV2(t, tcpAddr)
	consumer.identify(map[string]any{"client_id": "consumer", "hostname": "cons-host", "user_agent": "wren-test/1.0"})
	consumer.send("SUB", nil, "alpha", "ch2")
	consumer.expectOK("SUB")
	consumer.send("RDY", nil, "1")

	producer := dialV2(t, tcpAddr)
	producer.identify(map[string]any{"client_id": "producer", "hostname": "prod-host", "user_agent": "wren-test/1.0"})
	producer.pub("alpha", "m1")
	producer.pub("alpha", "m2")
	producer.pub("beta", "b1")

	if r := httpDoAddr(t, httpAddr, "POST", "/pub?topic=alpha&defer=3600000", strings.NewReader("deferred")); r.status != 200 {
		t.Fatalf("deferred pub: %d %s", r.status, r.body)
	}
	if r := httpDoAddr(t, httpAddr, "POST", "/mpub?topic=beta", strings.NewReader("x\ny\n")); r.status != 200 {
		t.Fatalf("mpub: %d %s", r.status, r.body)
	}

	pollUntil(t, 5*time.Second, "the scenario to settle", func() bool {
		var s struct {
			Topics []topicStats `json:"topics"`
		}
		httpJSON(t, httpAddr, "/stats?format=json&include_mem=false", &s)
		if len(s.Topics) != 2 || len(s.Topics[0].Channels) != 2 {
			return false
		}
		alpha, ch1, ch2 := s.Topics[0], s.Topics[0].Channels[0], s.Topics[0].Channels[1]
		return alpha.Depth == 0 && ch1.Depth == 2 && ch1.DeferredCount == 1 &&
			ch2.InFlightCount == 1 && ch2.Depth == 1 && ch2.DeferredCount == 1 &&
			len(ch2.Clients) == 1 && ch2.Clients[0].InFlightCount == 1
	})
}

func TestStatsGolden(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	statsScenario(t, b.TCPAddr().String(), b.HTTPAddr().String())

	r := httpDo(t, b, "GET", "/stats?format=json&include_mem=false", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("GET /stats json: %d %v", r.status, r.header)
	}
	checkGolden(t, "stats.json.golden", indentJSON(t, []byte(applyRewrites(r.body, volatileStats))))

	r = httpDo(t, b, "GET", "/stats?include_mem=false", nil)
	if r.status != 200 || r.header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("GET /stats text: %d %v", r.status, r.header)
	}
	checkGolden(t, "stats.txt.golden", []byte(applyRewrites(r.body, volatileStats)))
}

func TestStatsFilters(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	statsScenario(t, b.TCPAddr().String(), b.HTTPAddr().String())
	type stats struct {
		Topics []struct {
			TopicName string `json:"topic_name"`
			Channels  []struct {
				ChannelName string            `json:"channel_name"`
				Clients     []json.RawMessage `json:"clients"`
			} `json:"channels"`
		} `json:"topics"`
		Memory    map[string]any `json:"memory"`
		Producers []clientStats  `json:"producers"`
	}
	summary := func(s stats) string {
		var parts []string
		for _, tp := range s.Topics {
			var chans []string
			for _, c := range tp.Channels {
				chans = append(chans, fmt.Sprintf("%s/%d", c.ChannelName, len(c.Clients)))
			}
			parts = append(parts, tp.TopicName+"["+strings.Join(chans, ",")+"]")
		}
		var pubs []string
		for _, p := range s.Producers {
			for _, pc := range p.PubCounts {
				pubs = append(pubs, pc.Topic+"="+strconv.FormatUint(pc.Count, 10))
			}
		}
		return strings.Join(parts, " ") + " producers:" + strings.Join(pubs, ",")
	}
	cases := []struct{ query, want string }{
		{"", "alpha[ch1/0,ch2/1] beta[] producers:alpha=2,beta=1"},
		{"&topic=alpha", "alpha[ch1/0,ch2/1] producers:alpha=2"},
		{"&topic=beta", "beta[] producers:beta=1"},
		{"&topic=alpha&channel=ch2", "alpha[ch2/1] producers:alpha=2"},
		{"&channel=ch1", "alpha[ch1/0] producers:alpha=2,beta=1"},
		{"&topic=nope", " producers:"},
		{"&include_clients=false", "alpha[ch1/0,ch2/0] beta[] producers:"},
		{"&include_clients=0&topic=alpha", "alpha[ch1/0,ch2/0] producers:"},
		{"&include_clients=maybe", "alpha[ch1/0,ch2/1] beta[] producers:alpha=2,beta=1"},
	}
	for _, tc := range cases {
		var s stats
		httpJSON(t, b.HTTPAddr().String(), "/stats?format=json"+tc.query, &s)
		if got := summary(s); got != tc.want {
			t.Errorf("/stats?format=json%s: %q, want %q", tc.query, got, tc.want)
		}
		if s.Memory == nil || len(s.Memory) != 9 {
			t.Errorf("/stats?format=json%s: memory %v, want its 9 fields", tc.query, s.Memory)
		}
	}

	// nsqd's nulls: no such topic, clients not asked for.
	for query, want := range map[string]string{
		"&topic=nope":            `"topics":null`,
		"&include_clients=false": `"clients":null`,
	} {
		r := httpDo(t, b, "GET", "/stats?format=json"+query, nil)
		if !strings.Contains(r.body, want) || !strings.Contains(r.body, `"producers":null`) {
			t.Errorf("/stats?format=json%s lacks %s and producers null: %s", query, want, r.body)
		}
	}
	for _, q := range []string{"&include_mem=false", "&include_mem=0"} {
		r := httpDo(t, b, "GET", "/stats?format=json"+q, nil)
		if strings.Contains(r.body, `"memory"`) {
			t.Errorf("/stats?format=json%s still has memory", q)
		}
	}
	if r := httpDo(t, b, "GET", "/stats?format=text", nil); !strings.Contains(r.body, "\nMemory:\n   heap_objects ") {
		t.Errorf("text stats lack memory:\n%s", r.body)
	}
	if r := httpDo(t, b, "GET", "/stats?format=json&topic=%zz", nil); r.status != 400 || errorMessage(t, r) != "INVALID_REQUEST" {
		t.Errorf("bad query: %d %s", r.status, r.body)
	}
}

func TestStatsEmptyBroker(t *testing.T) {
	b := startHTTPTestBroker(t, nil)
	r := httpDo(t, b, "GET", "/stats?format=json&include_mem=false", nil)
	want := `{"version":"1.3.0","health":"OK","start_time":0,"topics":[],"producers":null}`
	if got := applyRewrites(r.body, volatileStats); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	r = httpDo(t, b, "GET", "/stats?include_mem=false", nil)
	wantText := "nsqd v1.3.0 (built w/GO)\nstart_time TIME\nuptime UPTIME\n\nHealth: OK\n\nTopics: None\n\nProducers: None\n"
	if got := applyRewrites(r.body, volatileStats); got != wantText {
		t.Errorf("got %q, want %q", got, wantText)
	}
}

func TestStatsMemoryPercentile(t *testing.T) {
	sorted := []uint64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for _, tc := range []struct {
		perc float64
		want uint64
	}{{100, 100}, {99, 100}, {95, 100}, {50, 60}, {0, 10}} {
		if got := percentileOf(sorted, tc.perc); got != tc.want {
			t.Errorf("percentileOf(%v) = %d, want %d", tc.perc, got, tc.want)
		}
	}
	if got := percentileOf(nil, 99); got != 0 {
		t.Errorf("percentileOf(nil) = %d", got)
	}
}

// TestStatsMatchReferenceNSQD runs the stats scenario against a real nsqd
// and compares its /info and /stats with the golden files. Set
// NSQD_REFERENCE_BIN to the nsqd binary to run it: one built from NSQ's
// master, since the golden files carry its topology fields (PR #1301).
func TestStatsMatchReferenceNSQD(t *testing.T) {
	bin := os.Getenv("NSQD_REFERENCE_BIN")
	if bin == "" {
		t.Skip("NSQD_REFERENCE_BIN not set")
	}
	tcpPortN, httpPortN := freePort(t), freePort(t)
	tcpAddr := fmt.Sprintf("127.0.0.1:%d", tcpPortN)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", httpPortN)
	cmd := exec.Command(bin, "--tcp-address="+tcpAddr, "--http-address="+httpAddr, "--https-address=",
		"--broadcast-address=wren-test", "--data-path="+t.TempDir())
	if testing.Verbose() {
		cmd.Stderr = testLogWriter{t}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pollUntil(t, 5*time.Second, "nsqd to listen", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})

	r := httpDoAddr(t, httpAddr, "GET", "/info", nil)
	compareGolden(t, "info.golden", indentJSON(t, normaliseInfo(t, r.body, tcpPortN, httpPortN)))

	statsScenario(t, tcpAddr, httpAddr)
	// nsqd lists one topic in pub_counts (a bug wren fixes); compare the
	// rest.
	onePub := []rewrite{
		{regexp.MustCompile(`"pub_counts":\s*\[[^\]]*\]`), `"pub_counts":PUBS`},
		{regexp.MustCompile(`msgs: \d+\s+topics: \S+`), `msgs: N topics: PUBS`},
	}
	r = httpDoAddr(t, httpAddr, "GET", "/stats?format=json&include_mem=false", nil)
	got := applyRewrites(string(indentJSON(t, []byte(applyRewrites(r.body, volatileStats)))), onePub)
	compareGolden(t, "stats.json.golden", []byte(got), onePub...)
	r = httpDoAddr(t, httpAddr, "GET", "/stats?include_mem=false", nil)
	compareGolden(t, "stats.txt.golden", []byte(applyRewrites(applyRewrites(r.body, volatileStats), onePub)), onePub...)
}

// compareGolden compares got with a golden file after applying rewrites to
// the golden file (never updating it).
func compareGolden(t *testing.T, name string, got []byte, rs ...rewrite) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if w := applyRewrites(string(want), rs); string(got) != w {
		t.Errorf("nsqd's %s differs from wren's\n--- nsqd\n%s\n--- wren\n%s", name, got, w)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
