package integration

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// nsqdFixture is a data directory written by nsqd v1.3.0 itself; its
// README says how.
const nsqdFixture = "testdata/nsqd-v1.3.0-datadir"

// takeoverBodies are the 300 messages the fixture's nsqd published to topic
// takeover, in order (see the fixture's README): `takeover-%06d`, some
// padded with that name repeated, index 150 to 64 KiB.
func takeoverBodies() []string {
	var out []string
	for i := 0; i < 300; i++ {
		base := fmt.Sprintf("takeover-%06d", i)
		size := 0
		switch {
		case i == 150:
			size = 64 * 1024
		case i%20 == 3:
			size = 100 + 13*i
		}
		if size == 0 {
			out = append(out, base)
			continue
		}
		out = append(out, strings.Repeat(base+".", size/len(base)+1)[:size])
	}
	return out
}

// heldBodies are the 50 messages published to topic held, which had no
// channel, so they wait in the topic's own disk queue.
func heldBodies() []string {
	var out []string
	for i := 0; i < 50; i++ {
		out = append(out, fmt.Sprintf("held-%06d", i))
	}
	return out
}

// copyFixture copies the fixture's nsqd files (not its README) into a fresh
// writable directory.
func copyFixture(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(nsqdFixture)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "README.md" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(nsqdFixture, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

type takeoverStats struct {
	Topics []struct {
		TopicName string `json:"topic_name"`
		Depth     int64  `json:"depth"`
		Channels  []struct {
			ChannelName   string `json:"channel_name"`
			Depth         int64  `json:"depth"`
			InFlightCount int    `json:"in_flight_count"`
			DeferredCount int    `json:"deferred_count"`
		} `json:"channels"`
	} `json:"topics"`
}

// depths reads /stats and returns every topic's depth under "topic" and
// every channel's depth+in-flight+deferred under "topic/channel".
func depths(t *testing.T, httpAddr string) map[string]int64 {
	t.Helper()
	var s takeoverStats
	code, err := getJSON("http://"+httpAddr+"/stats?format=json&include_mem=false", &s)
	if err != nil || code != http.StatusOK {
		t.Fatalf("/stats: %d %v", code, err)
	}
	out := map[string]int64{}
	for _, tp := range s.Topics {
		out[tp.TopicName] = tp.Depth
		for _, c := range tp.Channels {
			out[tp.TopicName+"/"+c.ChannelName] = c.Depth + int64(c.InFlightCount) + int64(c.DeferredCount)
		}
	}
	return out
}

// sameDepths: got has exactly want's names, with want's depths.
func sameDepths(got, want map[string]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// waitDepths polls /stats until it shows exactly want, or fails with what
// it showed last.
func waitDepths(t *testing.T, httpAddr, what string, want map[string]int64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		got := depths(t, httpAddr)
		if sameDepths(got, want) {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: /stats shows %v, want %v", what, got, want)
		}
	}
}

// waitBodies polls until e has received every body of want, or fails
// naming the bodies still missing and any it did not expect.
func waitBodies(t *testing.T, what string, e *exactlyOnce, want []string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		missing, extra := diffBodies(e, want)
		if len(missing) == 0 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			if len(missing) > 10 {
				missing = append(missing[:10], fmt.Sprintf("and %d more", len(missing)-10))
			}
			t.Fatalf("%s: still missing %v; unexpected bodies received: %v", what, missing, extra)
		}
	}
}

// diffBodies: the bodies of want e has not received, and those it received
// that are not in want.
func diffBodies(e *exactlyOnce, want []string) (missing, extra []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	wanted := map[string]bool{}
	for _, b := range want {
		wanted[b] = true
		if e.seen[b] == 0 {
			missing = append(missing, short(b))
		}
	}
	for b, n := range e.seen {
		if !wanted[b] {
			extra = append(extra, fmt.Sprintf("%s ×%d", short(b), n))
		}
	}
	sort.Strings(extra)
	return missing, extra
}

// short names a body for a failure message without printing 64 KiB.
func short(b string) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q…(%d bytes)", b[:40], len(b))
	}
	return fmt.Sprintf("%q", b)
}

// checkExactlyOnce: every body of want received once, nothing else.
func checkExactlyOnce(t *testing.T, what string, e *exactlyOnce, want []string) {
	t.Helper()
	missing, extra := diffBodies(e, want)
	if len(missing) > 0 {
		t.Errorf("%s: %d bodies never received: %v", what, len(missing), missing)
	}
	if len(extra) > 0 {
		t.Errorf("%s: %d unexpected bodies: %v", what, len(extra), extra)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range want {
		if n := e.seen[b]; n > 1 {
			t.Errorf("%s: %s received %d times, want once", what, short(b), n)
		}
	}
}

func stopConsumers(t *testing.T, cs ...*nsq.Consumer) {
	t.Helper()
	for _, c := range cs {
		c.Stop()
	}
	for _, c := range cs {
		select {
		case <-c.StopChan:
		case <-time.After(10 * time.Second):
			t.Error("consumer did not stop")
		}
	}
}

// TestTakeoverNSQDDataDir: wren started on a data directory that nsqd
// v1.3.0 wrote (and stopped cleanly) delivers every message in it exactly
// once, byte for byte: each channel's queue, and a channelless topic's own
// queue to its first channel, but not the topic queue nsqd had already
// copied to its channels. After a SIGTERM and a restart on the same
// directory nothing comes back.
func TestTakeoverNSQDDataDir(t *testing.T) {
	data := copyFixture(t)
	takeover, held := takeoverBodies(), heldBodies()

	w := startWren(t, data)
	want := map[string]int64{"takeover": 0, "takeover/ch_a": 300, "takeover/ch_b": 300, "held": 50}
	if got := depths(t, w.http); !sameDepths(got, want) {
		t.Fatalf("/stats after taking over the nsqd directory: %v, want %v", got, want)
	}

	a := &exactlyOnce{seen: map[string]int{}}
	b := &exactlyOnce{seen: map[string]int{}}
	h := &exactlyOnce{seen: map[string]int{}}
	ca := consumer(t, w.tcpAddr, "takeover", "ch_a", 50, a)
	cb := consumer(t, w.tcpAddr, "takeover", "ch_b", 50, b)
	ch := consumer(t, w.tcpAddr, "held", "fresh", 50, h)
	defer stopConsumers(t, ca, cb, ch)

	waitBodies(t, "every takeover message on ch_a", a, takeover)
	waitBodies(t, "every takeover message on ch_b", b, takeover)
	waitBodies(t, "every held message on a new channel", h, held)

	drained := map[string]int64{"takeover": 0, "takeover/ch_a": 0, "takeover/ch_b": 0, "held": 0, "held/fresh": 0}
	waitDepths(t, w.http, "after consuming everything", drained)
	checkExactlyOnce(t, "takeover/ch_a", a, takeover)
	checkExactlyOnce(t, "takeover/ch_b", b, takeover)
	checkExactlyOnce(t, "held/fresh", h, held)

	stopConsumers(t, ca, cb, ch)
	w.stop()

	// Restart on the same directory: wren recorded its read positions, so
	// /stats shows nothing queued, and a consumer gets only what is
	// published now. The sentinel bounds the poll: once it has arrived the
	// consumer was ready, and anything left over would be in flight or
	// queued, which the depths (in-flight included) would show.
	w2 := startWren(t, data)
	if got := depths(t, w2.http); !sameDepths(got, drained) {
		t.Fatalf("/stats after a restart on the taken-over directory: %v, want %v", got, drained)
	}
	a2 := &exactlyOnce{seen: map[string]int{}}
	b2 := &exactlyOnce{seen: map[string]int{}}
	h2 := &exactlyOnce{seen: map[string]int{}}
	ca2 := consumer(t, w2.tcpAddr, "takeover", "ch_a", 50, a2)
	cb2 := consumer(t, w2.tcpAddr, "takeover", "ch_b", 50, b2)
	ch2 := consumer(t, w2.tcpAddr, "held", "fresh", 50, h2)
	defer stopConsumers(t, ca2, cb2, ch2)
	p := producer(t, w2.tcpAddr)
	sentinel := []string{"after-restart"}
	for _, topic := range []string{"takeover", "held"} {
		if err := p.Publish(topic, []byte(sentinel[0])); err != nil {
			t.Fatal(err)
		}
	}
	waitBodies(t, "the sentinel on ch_a", a2, sentinel)
	waitBodies(t, "the sentinel on ch_b", b2, sentinel)
	waitBodies(t, "the sentinel on held/fresh", h2, sentinel)
	waitDepths(t, w2.http, "after the sentinels, on the restarted wren", drained)
	checkExactlyOnce(t, "takeover/ch_a after restart", a2, sentinel)
	checkExactlyOnce(t, "takeover/ch_b after restart", b2, sentinel)
	checkExactlyOnce(t, "held/fresh after restart", h2, sentinel)
}
