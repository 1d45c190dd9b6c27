package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"testing"
	"time"
)

// post sends POST http://addr/path?query and fails the test unless the
// broker answers 200.
func post(t *testing.T, addr, path string, query url.Values) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post("http://"+addr+path+"?"+query.Encode(), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s?%s: %s %s", path, query.Encode(), resp.Status, body)
	}
}

// TestKillKeepsAcceptedMessages kills wren with SIGKILL right after it
// accepted 50 PUBs and 5 MPUBs of 20 (one batch record each) for a
// channel nobody consumes. With --mem-queue-size=0 every message goes to
// disk before PUB or MPUB answers OK, and with --sync-every=1 each write
// is followed by a metadata sync, so every accepted message must come back
// after a restart on the same data path.
func TestKillKeepsAcceptedMessages(t *testing.T) {
	const topic, channel, pubs, mpubs, perMPUB = "crash", "survivor", 50, 5, 20
	const count = pubs + mpubs*perMPUB
	args := []string{"--mem-queue-size=0", "--sync-every=1"}
	data := t.TempDir()
	w := startWren(t, data, args...)

	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})

	p := producer(t, w.tcpAddr)
	for i := 0; i < pubs; i++ {
		if err := p.Publish(topic, []byte(fmt.Sprintf("msg-%03d", i))); err != nil {
			t.Fatalf("publishing msg-%03d: %v", i, err)
		}
	}
	for batch := 0; batch < mpubs; batch++ {
		var bodies [][]byte
		for j := 0; j < perMPUB; j++ {
			bodies = append(bodies, []byte(fmt.Sprintf("msg-%03d", pubs+batch*perMPUB+j)))
		}
		if err := p.MultiPublish(topic, bodies); err != nil {
			t.Fatalf("MPUB %d: %v", batch, err)
		}
	}

	if err := w.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("wren did not exit after SIGKILL:\n%s", w.logs())
	}
	p.Stop()

	w2 := startWren(t, data, args...)
	got := newReceived(false)
	c := consumer(t, w2.tcpAddr, topic, channel, count, got)
	defer c.Stop()
	deadline := time.Now().Add(15 * time.Second)
	for got.distinct() < count && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	got.mu.Lock()
	defer got.mu.Unlock()
	var missing []string
	for i := 0; i < count; i++ {
		if _, ok := got.at[fmt.Sprintf("msg-%03d", i)]; !ok {
			missing = append(missing, fmt.Sprintf("msg-%03d", i))
		}
	}
	if len(missing) > 0 {
		var have []string
		for body := range got.at {
			have = append(have, body)
		}
		sort.Strings(have)
		t.Fatalf("%d of %d accepted messages lost across SIGKILL: missing %v, got %v\nfirst run:\n%s\nafter restart:\n%s",
			len(missing), count, missing, have, w.logs(), w2.logs())
	}
	if got.count != count {
		t.Logf("%d deliveries for %d messages: duplicates after the crash", got.count, count)
	}
}
