package integration

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wren/internal/powercut"
)

// brokerStarter starts a broker on a data path: startWren, or startNSQD
// for the reference.
type brokerStarter func(t *testing.T, data string, args ...string) *wrenProcess

// startNSQD runs the reference nsqd at bin on free loopback ports, the
// way startWren runs wren.
func startNSQD(bin string) brokerStarter {
	return func(t *testing.T, data string, args ...string) *wrenProcess {
		t.Helper()
		addrs := freeAddrs(t, 2)
		cmd := exec.Command(bin, append([]string{"--tcp-address=" + addrs[0], "--http-address=" + addrs[1],
			"--https-address=", "--broadcast-address=127.0.0.1", "--data-path=" + data}, args...)...)
		var tcp, http bool
		return launch(t, cmd, func(line string) (string, string, bool) {
			tcp = tcp || strings.Contains(line, "TCP: listening on")
			http = http || strings.Contains(line, "HTTP: listening on")
			return addrs[0], addrs[1], tcp && http
		})
	}
}

// faultResult counts one fault run: messages published and acknowledged,
// distinct ones received of those, acknowledged ones lost, repeated
// deliveries, and whether the broker was alive at the end.
type faultResult struct {
	published, acked, received, lost, duplicated int
	alive                                        bool
}

func (r faultResult) String() string {
	return fmt.Sprintf("published %d, acknowledged %d, received %d, lost %d, duplicated %d, alive %v",
		r.published, r.acked, r.received, r.lost, r.duplicated, r.alive)
}

// tally fills in what got received of the acknowledged bodies, and
// whether w is still running.
func (r *faultResult) tally(acked func(yield func(string) bool), got *received, w *wrenProcess) {
	got.mu.Lock()
	for body := range acked {
		if _, ok := got.at[body]; !ok {
			r.lost++
		}
	}
	r.received, r.duplicated = len(got.at), got.count-len(got.at)
	got.mu.Unlock()
	select {
	case <-w.done:
	default:
		r.alive = true
	}
}

// runPowerCut starts wren with args on a power-cut filesystem, publishes
// count messages (PUBs and MPUBs) and counts the acknowledgements, kills
// it, cuts the power (every write not fsynced is lost), starts it again
// on what is left and consumes for up to wait. The filesystem is
// unmounted when the test ends, whether it passed or not.
func runPowerCut(t *testing.T, start brokerStarter, count int, wait time.Duration, args ...string) faultResult {
	t.Helper()
	fsys, mnt := powercut.MountTemp(t)
	data := filepath.Join(mnt, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}

	const topic, channel, perMPUB = "power", "survivor", 10
	w := start(t, data, args...)
	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})
	p := producer(t, w.tcpAddr)
	r := faultResult{published: count}
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

	w2 := start(t, data, args...)
	got := newReceived(false)
	c := consumer(t, w2.tcpAddr, topic, channel, 100, got)
	defer c.Stop()
	deadline := time.Now().Add(wait)
	for got.distinct() < r.acked && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	r.tally(func(yield func(string) bool) {
		for i := range r.acked {
			if !yield(fmt.Sprintf("msg-%05d", i)) {
				return
			}
		}
	}, got, w2)
	return r
}

// Without fsyncs, a power cut loses acknowledged messages: the test can
// tell a write from an fsync, which a SIGKILL cannot.
func TestPowerCutLosesUnsyncedMessages(t *testing.T) {
	// --sync-every and --sync-timeout far off: nothing is fsynced.
	r := runPowerCut(t, startWren, 200, 2*time.Second, "--mem-queue-size=0", "--sync-every=1000000", "--sync-timeout=1h")
	t.Logf("no fsyncs: %s", r)
	if r.lost == 0 {
		t.Fatalf("a power cut with nothing fsynced lost nothing (%s): the filesystem is not dropping unsynced writes", r)
	}
	if !r.alive {
		t.Fatalf("wren did not survive restarting after the cut (%s)", r)
	}
}

// With --durable a power cut loses nothing acknowledged: every OK came
// after an fsync. The same run without fsyncs loses messages (above), so
// this test can fail.
func TestPowerCutDurableLosesNothing(t *testing.T) {
	r := runPowerCut(t, startWren, powerCutMessages(), 5*time.Second, "--durable")
	t.Logf("--durable: %s", r)
	if r.lost > 0 || !r.alive {
		t.Fatalf("--durable across a power cut: %s", r)
	}
}

// powerCutMessages is how many messages a power-cut run publishes: a
// short run in `make test`, more under WREN_RELIABILITY_FULL=1 (`make
// reliability`).
func powerCutMessages() int {
	if os.Getenv("WREN_RELIABILITY_FULL") != "" {
		return 20000
	}
	return 1000
}

// TestPowerCutReference runs the same power cut on the reference nsqd
// named by WREN_NSQD (built from NSQ's repository, outside this one), for
// docs/reliability.md: with --mem-queue-size=0 --sync-every=1, nsqd's
// most careful setting, and with its defaults. It checks only that the
// run itself worked; the counts are in the log.
func TestPowerCutReference(t *testing.T) {
	bin := os.Getenv("WREN_NSQD")
	if bin == "" {
		t.Skip("set WREN_NSQD to an nsqd binary to measure it")
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"mem-queue-size=0 sync-every=1", []string{"--mem-queue-size=0", "--sync-every=1"}},
		{"defaults", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runPowerCut(t, startNSQD(bin), 1000, 3*time.Second, tc.args...)
			t.Logf("nsqd %s: %s", tc.name, r)
			if r.acked != 1000 || !r.alive {
				t.Fatalf("the run did not complete: %s", r)
			}
		})
	}
}
