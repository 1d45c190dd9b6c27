package broker

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"wren/lookup"
)

// startLookupForBroker runs an embedded lookup on loopback port 0.
func startLookupForBroker(t *testing.T) *lookup.Lookup {
	t.Helper()
	opts := lookup.NewOptions()
	opts.TCPAddress, opts.HTTPAddress = "127.0.0.1:0", "127.0.0.1:0"
	opts.BroadcastAddress = "127.0.0.1"
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := lookup.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Shutdown(ctx)
	})
	return l
}

func lookupGet(t *testing.T, l *lookup.Lookup, path string, v any) int {
	t.Helper()
	resp, err := http.Get("http://" + l.HTTPAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func lookupChannels(t *testing.T, l *lookup.Lookup, topic string) []string {
	var body struct {
		Channels []string `json:"channels"`
	}
	if lookupGet(t, l, "/lookup?topic="+topic, &body) != http.StatusOK {
		return nil
	}
	return body.Channels
}

// TestLookupRegistration: the broker announces topics and channels as they
// are created and withdraws them as they are deleted.
func TestLookupRegistration(t *testing.T) {
	l := startLookupForBroker(t)
	b := startTestBroker(t, func(o *Options) { o.LookupdTCPAddrs = []string{l.TCPAddr().String()} })
	topic, err := b.Topic("reg")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topic.Channel("c1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "topic and channel registered", func() bool {
		return strings.Join(lookupChannels(t, l, "reg"), ",") == "c1"
	})
	channelProducers := func() int {
		var debug map[string][]any
		lookupGet(t, l, "/debug", &debug)
		return len(debug["channel:reg:c1"])
	}
	if n := channelProducers(); n != 1 {
		t.Fatalf("channel registration has %d producers before the delete, want 1", n)
	}
	topic.DeleteChannel("c1")
	// The lookup keeps an empty channel registration listed, as
	// nsqlookupd does; what goes is this broker as its producer.
	waitFor(t, 5*time.Second, "channel withdrawn", func() bool { return channelProducers() == 0 })
	b.DeleteTopic("reg")
	waitFor(t, 5*time.Second, "topic withdrawn", func() bool {
		var body struct {
			Producers []any `json:"producers"`
		}
		code := lookupGet(t, l, "/lookup?topic=reg", &body)
		return code == http.StatusNotFound || len(body.Producers) == 0
	})
}

// TestLookupPrecreatesChannels: a topic new to this broker gets the
// non-ephemeral channels the cluster already has for it before its first
// message is delivered, so each of them gets that message.
func TestLookupPrecreatesChannels(t *testing.T) {
	l := startLookupForBroker(t)
	for _, ch := range []string{"billing", "audit", "tmp#ephemeral"} {
		resp, err := http.Post("http://"+l.HTTPAddr().String()+"/channel/create?topic=known&channel="+strings.ReplaceAll(ch, "#", "%23"), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	b := startTestBroker(t, func(o *Options) { o.LookupdTCPAddrs = []string{l.TCPAddr().String()} })
	waitFor(t, 5*time.Second, "broker connected to the lookup", func() bool { return len(b.lookups.httpAddrs()) == 1 })
	p := newProducer(t, b, nil)
	if err := p.Publish("known", []byte("first")); err != nil {
		t.Fatal(err)
	}
	topic := b.ExistingTopic("known")
	var names []string
	for _, ch := range topic.Channels() {
		names = append(names, ch.Name())
	}
	if strings.Join(names, ",") != "audit,billing" {
		t.Fatalf("channels %v, want [audit billing] (ephemeral ones are not pre-created)", names)
	}
	for _, ch := range topic.Channels() {
		waitFor(t, 5*time.Second, "first message in "+ch.Name(), func() bool { return ch.Depth() == 1 })
	}
}

// TestLookupPeersChangeAtRuntime: PUT /config/nsqlookupd_tcp_addresses
// connects to new peers and leaves removed ones.
func TestLookupPeersChangeAtRuntime(t *testing.T) {
	l := startLookupForBroker(t)
	b := startTestBroker(t, nil)
	if _, err := b.Topic("runtime"); err != nil {
		t.Fatal(err)
	}
	put := func(body string) {
		req, _ := http.NewRequest(http.MethodPut, "http://"+b.HTTPAddr().String()+"/config/nsqlookupd_tcp_addresses", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %d", body, resp.StatusCode)
		}
	}
	producers := func() int {
		var body struct {
			Producers []any `json:"producers"`
		}
		if lookupGet(t, l, "/lookup?topic=runtime", &body) != http.StatusOK {
			return 0
		}
		return len(body.Producers)
	}
	put(`["` + l.TCPAddr().String() + `"]`)
	waitFor(t, 5*time.Second, "broker registered after PUT", func() bool { return producers() == 1 })
	put(`[]`)
	waitFor(t, 5*time.Second, "broker gone after PUT []", func() bool { return producers() == 0 })
}
