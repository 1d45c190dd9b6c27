package integration

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"wren/internal/powercut"
)

// powerCutResult counts one run of publish, SIGKILL, power cut, restart
// and consume.
type powerCutResult struct {
	acked, received, lost, duplicated int
	alive                             bool
}

func (r powerCutResult) String() string {
	return fmt.Sprintf("acknowledged %d, received %d, lost %d, duplicated %d, alive after restart %v",
		r.acked, r.received, r.lost, r.duplicated, r.alive)
}

// runPowerCut starts wren with args on a power-cut filesystem, publishes
// count messages (PUBs and MPUBs) and counts the acknowledgements, kills
// it, cuts the power (every write not fsynced is lost), starts it again
// on what is left and consumes for up to wait. The filesystem is
// unmounted when the test ends, whether it passed or not.
func runPowerCut(t *testing.T, count int, wait time.Duration, args ...string) powerCutResult {
	t.Helper()
	fsys, mnt := powercut.MountTemp(t)
	data := filepath.Join(mnt, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}

	const topic, channel, perMPUB = "power", "survivor", 10
	w := startWren(t, data, args...)
	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})
	p := producer(t, w.tcpAddr)
	var r powerCutResult
	for r.acked < count {
		if r.acked%(2*perMPUB) == 0 {
			if err := p.Publish(topic, []byte(fmt.Sprintf("msg-%05d", r.acked))); err != nil {
				t.Fatalf("PUB msg-%05d: %v", r.acked, err)
			}
			r.acked++
			continue
		}
		var bodies [][]byte
		for j := 0; j < perMPUB && r.acked+j < count; j++ {
			bodies = append(bodies, []byte(fmt.Sprintf("msg-%05d", r.acked+j)))
		}
		if err := p.MultiPublish(topic, bodies); err != nil {
			t.Fatalf("MPUB from msg-%05d: %v", r.acked, err)
		}
		r.acked += len(bodies)
	}
	p.Stop()

	w.kill() // SIGKILL, so nothing more is written
	fsys.Cut()

	w2 := startWren(t, data, args...)
	got := newReceived(false)
	c := consumer(t, w2.tcpAddr, topic, channel, 100, got)
	defer c.Stop()
	deadline := time.Now().Add(wait)
	for got.distinct() < r.acked && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	got.mu.Lock()
	r.received = got.count
	for i := 0; i < r.acked; i++ {
		if _, ok := got.at[fmt.Sprintf("msg-%05d", i)]; !ok {
			r.lost++
		}
	}
	r.duplicated = got.count - len(got.at)
	got.mu.Unlock()
	select {
	case <-w2.done:
	default:
		r.alive = true
	}
	return r
}

// Without fsyncs, a power cut loses acknowledged messages: the test can
// tell a write from an fsync, which a SIGKILL cannot.
func TestPowerCutLosesUnsyncedMessages(t *testing.T) {
	// --sync-every and --sync-timeout far off: nothing is fsynced.
	r := runPowerCut(t, 200, 2*time.Second, "--mem-queue-size=0", "--sync-every=1000000", "--sync-timeout=1h")
	t.Logf("no fsyncs: %s", r)
	if r.lost == 0 {
		t.Fatalf("a power cut with nothing fsynced lost nothing (%s): the filesystem is not dropping unsynced writes", r)
	}
	if !r.alive {
		t.Fatalf("wren did not survive restarting after the cut (%s)", r)
	}
}
