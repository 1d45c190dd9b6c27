package integration

import (
	"encoding/binary"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDamagedRecordsSkipped damages a channel's disk queue the way a bad
// disk and a torn write do, then restarts wren on it: the damaged batch
// record is skipped, counted and logged, the torn tail costs nothing that
// was whole, every intact message is delivered, and the broker keeps
// serving.
func TestDamagedRecordsSkipped(t *testing.T) {
	const topic, channel, batches, perBatch = "damage", "ch", 3, 10
	args := []string{"--mem-queue-size=0"}
	data := t.TempDir()
	w := startWren(t, data, args...)
	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})
	p := producer(t, w.tcpAddr)
	body := func(batch, i int) string { return fmt.Sprintf("batch-%d-msg-%02d", batch, i) }
	for b := 0; b < batches; b++ {
		var bodies [][]byte
		for i := 0; i < perBatch; i++ {
			bodies = append(bodies, []byte(body(b, i)))
		}
		if err := p.MultiPublish(topic, bodies); err != nil {
			t.Fatal(err)
		}
	}
	p.Stop()
	w.stop()

	// Each MPUB is one record in the channel's queue: flip a byte inside
	// the second one, then append half a record as a torn write leaves it.
	path := filepath.Join(data, topic+":"+channel+".diskqueue.000000.dat")
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int
	for off := 0; off+4 <= len(file); {
		offsets = append(offsets, off)
		off += 4 + int(binary.BigEndian.Uint32(file[off:]))
	}
	if len(offsets) != batches {
		t.Fatalf("channel queue holds %d records, want %d (one per MPUB)", len(offsets), batches)
	}
	file[offsets[2]-3] ^= 0x55
	torn := binary.BigEndian.AppendUint32(nil, 4096)
	file = append(file, append(torn, "only part of a record"...)...)
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}

	w2 := startWren(t, data, args...)
	got := newReceived(false)
	c := consumer(t, w2.tcpAddr, topic, channel, 100, got)
	defer c.Stop()
	want := []string{}
	for _, b := range []int{0, 2} {
		for i := 0; i < perBatch; i++ {
			want = append(want, body(b, i))
		}
	}
	waitFor(t, 15*time.Second, "the intact messages", func() bool { return got.distinct() >= len(want) })
	waitFor(t, 10*time.Second, "the damage to be logged", func() bool {
		return strings.Contains(w2.logs(), "skipped a damaged disk-queue record")
	})

	// Still serving: a new message goes through.
	p2 := producer(t, w2.tcpAddr)
	if err := p2.Publish(topic, []byte("after the damage")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a message published after the damage", func() bool {
		got.mu.Lock()
		defer got.mu.Unlock()
		_, ok := got.at["after the damage"]
		return ok
	})

	got.mu.Lock()
	defer got.mu.Unlock()
	for _, b := range want {
		if _, ok := got.at[b]; !ok {
			t.Errorf("intact message %q not delivered", b)
		}
	}
	for i := 0; i < perBatch; i++ {
		if _, ok := got.at[body(1, i)]; ok {
			t.Errorf("message %q of the damaged record was delivered", body(1, i))
		}
	}
	if len(got.at) != len(want)+1 {
		t.Errorf("delivered %d distinct messages, want %d", len(got.at), len(want)+1)
	}
	if losses := channelLosses(t, w2.http, topic, channel); losses["damaged_records"] != 1 {
		t.Errorf("/stats reports losses %v, want damaged_records 1", losses)
	}
}
