package integration

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDurableKillKeepsAcknowledged kills a --durable wren with SIGKILL while
// publishers are in the middle of PUB, MPUB, DPUB, HTTP /pub and /mpub. Every
// message answered OK before the kill must come back after a restart on
// the same data path. --sync-timeout=1h and the default --sync-every keep
// go-diskqueue from writing its metadata during the run, so the restart
// recovers from the metadata file written when the queue opened: the
// records after it are found because they were fsynced (here the page
// cache would survive anyway) and go-diskqueue reads a write file to its
// real end.
func TestDurableKillKeepsAcknowledged(t *testing.T) {
	const topic, channel = "durable", "survivor"
	args := []string{"--durable", "--sync-timeout=1h"}
	data := t.TempDir()
	w := startWren(t, data, args...)
	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})

	var mu sync.Mutex
	acked := map[string]bool{}
	ack := func(bodies ...string) {
		mu.Lock()
		for _, b := range bodies {
			acked[b] = true
		}
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	publisher := func(name string, send func(bodies []string) error, batch int) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			bodies := make([]string, batch)
			for j := range bodies {
				bodies[j] = fmt.Sprintf("%s-%06d-%03d", name, i, j)
			}
			if err := send(bodies); err != nil {
				return // the kill cut it off
			}
			ack(bodies...)
		}
	}
	for n := range 2 {
		p := producer(t, w.tcpAddr)
		wg.Add(3)
		// Deferred past the restart: they come back from the deferred
		// journal with their due times.
		go publisher(fmt.Sprintf("dpub%d", n), func(b []string) error {
			return p.DeferredPublish(topic, 1500*time.Millisecond, []byte(b[0]))
		}, 1)
		go publisher(fmt.Sprintf("pub%d", n), func(b []string) error { return p.Publish(topic, []byte(b[0])) }, 1)
		go publisher(fmt.Sprintf("mpub%d", n), func(b []string) error {
			bodies := make([][]byte, len(b))
			for i := range b {
				bodies[i] = []byte(b[i])
			}
			return p.MultiPublish(topic, bodies)
		}, 50)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	httpPub := func(path string, body string) error {
		resp, err := client.Post("http://"+w.http+path+"?topic="+topic, "text/plain", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		return nil
	}
	wg.Add(2)
	go publisher("http", func(b []string) error { return httpPub("/pub", b[0]) }, 1)
	go publisher("httpm", func(b []string) error { return httpPub("/mpub", strings.Join(b, "\n")) }, 20)

	// Kill once a good number of messages have been acknowledged.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.kill()
	close(stop)
	wg.Wait()
	mu.Lock()
	count := len(acked)
	mu.Unlock()
	if count == 0 {
		t.Fatalf("nothing was acknowledged before the kill:\n%s", w.logs())
	}

	w2 := startWren(t, data, args...)
	got := newReceived(false)
	c := consumer(t, w2.tcpAddr, topic, channel, 500, got)
	defer c.Stop()
	deadline = time.Now().Add(30 * time.Second)
	for {
		got.mu.Lock()
		missing := 0
		for body := range acked {
			if _, ok := got.at[body]; !ok {
				missing++
			}
		}
		got.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages lost across SIGKILL\nafter restart:\n%s", missing, count, w2.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
	deferred := 0
	for body := range acked {
		if strings.HasPrefix(body, "dpub") {
			deferred++
		}
	}
	if deferred == 0 {
		t.Fatal("no DPUB was acknowledged before the kill")
	}
	t.Logf("all %d acknowledged messages (%d deferred) came back after SIGKILL", count, deferred)
}

// TestDurableKillKeepsInFlight: with --durable a message read from disk is
// not lost when wren dies before its FIN, even once go-diskqueue has saved
// a read position past it. A consumer holds every message unanswered;
// once the channel's metadata file shows everything read, wren is killed,
// and the restarted wren delivers every message again.
func TestDurableKillKeepsInFlight(t *testing.T) {
	const topic, channel, batches, per = "inflight", "holder", 3, 100
	args := []string{"--durable", "--sync-timeout=50ms"}
	data := t.TempDir()
	w := startWren(t, data, args...)
	post(t, w.http, "/topic/create", url.Values{"topic": {topic}})
	post(t, w.http, "/channel/create", url.Values{"topic": {topic}, "channel": {channel}})
	p := producer(t, w.tcpAddr)
	for b := range batches {
		var bodies [][]byte
		for i := range per {
			bodies = append(bodies, []byte(fmt.Sprintf("held-%d-%03d", b, i)))
		}
		if err := p.MultiPublish(topic, bodies); err != nil {
			t.Fatal(err)
		}
	}
	held := newReceived(true)
	c := consumer(t, w.tcpAddr, topic, channel, batches*per, held)
	waitFor(t, 10*time.Second, "every message in flight", func() bool { return held.distinct() == batches*per })

	// go-diskqueue saves the position past what it handed over at its
	// next sync (every --sync-timeout while active).
	meta := filepath.Join(data, topic+":"+channel+".diskqueue.meta.dat")
	waitFor(t, 10*time.Second, "the read position saved past every record", func() bool {
		var depth, readFile, readPos, writeFile, writePos int64
		b, err := os.ReadFile(meta)
		if err != nil {
			return false
		}
		_, err = fmt.Sscanf(string(b), "%d\n%d,%d\n%d,%d\n", &depth, &readFile, &readPos, &writeFile, &writePos)
		return err == nil && readFile == writeFile && readPos == writePos && writePos > 0
	})
	w.kill()
	c.Stop()

	w2 := startWren(t, data, args...)
	got := newReceived(false)
	c2 := consumer(t, w2.tcpAddr, topic, channel, batches*per, got)
	defer c2.Stop()
	waitFor(t, 15*time.Second, "every in-flight message delivered again after SIGKILL", func() bool {
		return got.distinct() == batches*per
	})
}
