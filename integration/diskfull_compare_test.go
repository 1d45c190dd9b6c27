package integration

import (
	"fmt"
	"maps"
	"net/url"
	"os"
	"testing"
	"time"
)

// runDiskFull starts a broker with its defaults on a small disk, with a
// topic and a channel nobody consumes yet, fills the disk, and publishes
// count messages one at a time, counting the OKs: the channel's memory
// queue fills, and past it every message needs the disk. Then space
// returns, a consumer reads the channel dry, and the run counts what
// arrived of what was acknowledged.
func runDiskFull(t *testing.T, start brokerStarter, count int) faultResult {
	t.Helper()
	const topic, channel = "full", "c"
	disk := smallDisk(t, "8m")
	w := start(t, disk, "--mem-queue-size=1000")
	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})
	makeSpace := fillDisk(t, disk)

	r := faultResult{published: count}
	acked := map[string]bool{}
	pub := newPublisher(t, w.tcpAddr)
	for i := 0; i < count; i++ {
		body := fmt.Sprintf("msg-%05d", i)
		if pub.Publish(topic, []byte(body)) == nil {
			acked[body] = true
		}
	}
	pub.p.Stop()
	r.acked = len(acked)
	makeSpace()

	got := newReceived(false)
	c := consumer(t, w.tcpAddr, topic, channel, 500, got)
	defer c.Stop()
	// Read until every acknowledged message is in, or nothing new has
	// come for two seconds.
	last, lastAt := -1, time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		n := got.distinct()
		if n != last {
			last, lastAt = n, time.Now()
		}
		if n >= r.acked || time.Since(lastAt) > 2*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.tally(maps.Keys(acked), got, w)
	return r
}

// Publishing through a full disk, wren refuses what it cannot store and
// loses nothing it acknowledged.
func TestDiskFullLosesNothingAcknowledged(t *testing.T) {
	r := runDiskFull(t, startWren, 3000)
	t.Logf("wren: %s", r)
	if r.acked == r.published {
		t.Fatalf("every publish was acknowledged on a full disk (%s): the disk never filled", r)
	}
	if r.lost > 0 || !r.alive {
		t.Fatalf("wren through a full disk: %s", r)
	}
}

// TestDiskFullReference runs the same disk-full run on the nsqd named by
// WREN_NSQD, for docs/reliability.md. It checks only that the run worked;
// the counts are in the log.
func TestDiskFullReference(t *testing.T) {
	bin := os.Getenv("WREN_NSQD")
	if bin == "" {
		t.Skip("set WREN_NSQD to an nsqd binary to measure it")
	}
	r := runDiskFull(t, startNSQD(bin), 3000)
	t.Logf("nsqd: %s", r)
	if !r.alive {
		t.Fatalf("nsqd did not survive the run: %s", r)
	}
}
