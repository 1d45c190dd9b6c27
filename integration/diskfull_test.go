package integration

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

// smallDisk mounts a tmpfs of size (e.g. "8m") for a test's data path and
// unmounts it when the test ends, after the broker is killed (cleanups run
// last-registered first). It skips the test when mounting is not
// permitted (not root, or no CAP_SYS_ADMIN in a container).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("full-disk tests need to mount a small tmpfs, which is not permitted here: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file into dir until the file system is full, and
// returns a function that removes it so space returns.
func fillDisk(t *testing.T, dir string) (makeSpace func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, chunk := range []int{1 << 20, 4 << 10, 1} {
		buf := make([]byte, chunk)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling %s: %v", dir, err)
				}
				break
			}
		}
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// ping is GET /ping's status and body.
func ping(t *testing.T, httpAddr string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func statsHealth(t *testing.T, httpAddr string) string {
	t.Helper()
	var stats struct{ Health string }
	if code, err := getJSON("http://"+httpAddr+"/stats?format=json", &stats); code != http.StatusOK || err != nil {
		t.Fatalf("/stats: %d %v", code, err)
	}
	return stats.Health
}

// waitHealthy waits for /ping to say OK again and checks /stats agrees.
func waitHealthy(t *testing.T, w *wrenProcess) {
	t.Helper()
	var code int
	var body string
	waitFor(t, 10*time.Second, "/ping to return to OK", func() bool {
		code, body = ping(t, w.http)
		return code == http.StatusOK && body == "OK"
	})
	if h := statsHealth(t, w.http); h != "OK" {
		t.Fatalf("/stats health %q once /ping says OK", h)
	}
}

// waitUnhealthy waits for /ping to say NOK naming queue, and returns the
// text.
func waitUnhealthy(t *testing.T, w *wrenProcess, queue string) string {
	t.Helper()
	var code int
	var body string
	waitFor(t, 10*time.Second, "/ping to report the full disk", func() bool {
		code, body = ping(t, w.http)
		return code == http.StatusInternalServerError
	})
	if !strings.HasPrefix(body, "NOK - ") || !strings.Contains(body, queue) || !strings.Contains(body, "no space left on device") {
		t.Fatalf("/ping = %d %q, want NOK naming %q and the disk's error", code, body, queue)
	}
	if h := statsHealth(t, w.http); !strings.HasPrefix(h, "NOK - ") {
		t.Fatalf("/stats health %q while /ping says %q", h, body)
	}
	return body
}

// publisher publishes with go-nsq, starting a new Producer after each
// error: E_PUB_FAILED closes the connection (as nsqd's does), and go-nsq
// v1.1.0 races with itself when a Producer reconnects.
type publisher struct {
	t    *testing.T
	addr string
	p    *nsq.Producer
}

func newPublisher(t *testing.T, addr string) *publisher {
	return &publisher{t: t, addr: addr, p: producer(t, addr)}
}

func (pub *publisher) Publish(topic string, body []byte) error {
	err := pub.p.Publish(topic, body)
	if err != nil {
		pub.p.Stop()
		pub.p = producer(pub.t, pub.addr)
	}
	return err
}

// publishEventually publishes body, trying again until it is accepted.
func publishEventually(t *testing.T, pub *publisher, topic, body string) {
	t.Helper()
	waitFor(t, 10*time.Second, "publishing "+body, func() bool {
		return pub.Publish(topic, []byte(body)) == nil
	})
}

func alive(t *testing.T, w *wrenProcess) {
	t.Helper()
	select {
	case <-w.done:
		t.Fatalf("wren exited:\n%s", w.logs())
	default:
	}
}

// After a disk-full the broker reports NOK naming the queue, refuses the
// publishes it cannot store, and is OK again after the first write that
// succeeds once space returns.
func TestDiskFullHealthRecovers(t *testing.T) {
	disk := smallDisk(t, "8m")
	w := startWren(t, disk, "--mem-queue-size=0")
	p := newPublisher(t, w.tcpAddr)
	if err := p.Publish("health", []byte("before")); err != nil {
		t.Fatal(err)
	}
	makeSpace := fillDisk(t, disk)

	refused := 0
	for i := 0; i < 200 && refused == 0; i++ {
		if err := p.Publish("health", []byte(fmt.Sprintf("full-%d", i))); err != nil {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("200 publishes to a full disk with --mem-queue-size=0 all succeeded")
	}
	t.Log(waitUnhealthy(t, w, "health"))

	makeSpace()
	publishEventually(t, p, "health", "after")
	waitHealthy(t, w)
	alive(t, w)
}

// A topic with 500 queued messages (100 in memory, 400 on disk) gets a
// channel while the disk is full: the channel cannot store the disk part,
// so the topic keeps it and retries; once space returns the channel's
// consumer gets all 500, each once.
func TestDiskFullTopicBacklogKept(t *testing.T) {
	const topic, channel, count = "backlog", "late", 500
	disk := smallDisk(t, "8m")
	w := startWren(t, disk, "--mem-queue-size=100")
	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	p := producer(t, w.tcpAddr)
	for i := 0; i < count; i++ {
		if err := p.Publish(topic, []byte(fmt.Sprintf("msg-%03d", i))); err != nil {
			t.Fatalf("publishing msg-%03d: %v", i, err)
		}
	}
	makeSpace := fillDisk(t, disk)
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})
	t.Log(waitUnhealthy(t, w, topic+":"+channel))

	makeSpace()
	got := newReceived(false)
	c := consumer(t, w.tcpAddr, topic, channel, 200, got)
	defer c.Stop()
	waitFor(t, 15*time.Second, "all 500 messages", func() bool { return got.distinct() == count })
	waitHealthy(t, w)
	got.mu.Lock()
	defer got.mu.Unlock()
	if got.count != count {
		t.Fatalf("received %d deliveries of %d messages: duplicates", got.count, count)
	}
	alive(t, w)
}

// Two channels, one with a consumer (room in memory) and one without (its
// memory full, so it needs the disk). With the disk full a publish is
// stored by the first and not the second: it is acknowledged, the topic
// retries the second's copy, and once space returns each channel has every
// message exactly once, including those the publisher had to retry.
func TestDiskFullPartialFanOut(t *testing.T) {
	const topic, before, during = "fan", 50, 100
	disk := smallDisk(t, "8m")
	w := startWren(t, disk, "--mem-queue-size=50")
	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {"b"}})
	a := newReceived(false)
	ca := consumer(t, w.tcpAddr, topic, "a", 200, a)
	defer ca.Stop()
	waitFor(t, 10*time.Second, "channel a's consumer", func() bool {
		var stats struct {
			Topics []struct {
				Channels []struct {
					ChannelName string `json:"channel_name"`
					ClientCount int    `json:"client_count"`
				} `json:"channels"`
			} `json:"topics"`
		}
		_, err := getJSON("http://"+w.http+"/stats?format=json&topic="+topic, &stats)
		if err != nil || len(stats.Topics) == 0 {
			return false
		}
		for _, ch := range stats.Topics[0].Channels {
			if ch.ChannelName == "a" && ch.ClientCount == 1 {
				return true
			}
		}
		return false
	})

	p := newPublisher(t, w.tcpAddr)
	for i := 0; i < before; i++ { // fills b's memory
		if err := p.Publish(topic, []byte(fmt.Sprintf("msg-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	makeSpace := fillDisk(t, disk)
	var refused []string
	acked := 0
	for i := before; i < before+during; i++ {
		body := fmt.Sprintf("msg-%03d", i)
		if len(refused) > 0 {
			// The publisher holds the rest back after the first refusal,
			// and sends them all once the disk has room.
			refused = append(refused, body)
		} else if err := p.Publish(topic, []byte(body)); err != nil {
			refused = append(refused, body)
		} else {
			acked++
		}
	}
	health := waitUnhealthy(t, w, topic+":b")
	t.Logf("%d acknowledged, %d refused while full; %s", acked, len(refused), health)
	if acked <= before {
		// b's disk queue may acknowledge up to its write-behind allowance
		// (the memory queue size) itself; past that only the topic's
		// retry lets a publish that a stored succeed.
		t.Fatalf("only %d of %d publishes acknowledged while channel a could store them", acked, during)
	}

	makeSpace()
	for _, body := range refused { // the publisher retries what was refused
		publishEventually(t, p, topic, body)
	}
	b := newReceived(false)
	cb := consumer(t, w.tcpAddr, topic, "b", 200, b)
	defer cb.Stop()
	const total = before + during
	for name, r := range map[string]*received{"a": a, "b": b} {
		waitFor(t, 15*time.Second, "channel "+name+" to get every message", func() bool { return r.distinct() == total })
	}
	waitHealthy(t, w)
	for name, r := range map[string]*received{"a": a, "b": b} {
		r.mu.Lock()
		if r.count != total {
			t.Errorf("channel %s: %d deliveries of %d messages: duplicates", name, r.count, total)
		}
		r.mu.Unlock()
	}
	alive(t, w)
}
