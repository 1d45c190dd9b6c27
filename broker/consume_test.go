package broker

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"wren/protocol"
)

func newProducer(t *testing.T, b *Broker, cfg *nsq.Config) *nsq.Producer {
	t.Helper()
	if cfg == nil {
		cfg = nsq.NewConfig()
	}
	p, err := nsq.NewProducer(b.TCPAddr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.SetLogger(nil, nsq.LogLevelError)
	t.Cleanup(p.Stop)
	return p
}

// collector is a go-nsq handler that records message bodies.
type collector struct {
	mu     sync.Mutex
	bodies []string
	msgs   []*nsq.Message
	handle func(*nsq.Message) error
}

func (c *collector) HandleMessage(m *nsq.Message) error {
	c.mu.Lock()
	c.bodies = append(c.bodies, string(m.Body))
	c.msgs = append(c.msgs, m)
	h := c.handle
	c.mu.Unlock()
	if h != nil {
		return h(m)
	}
	return nil
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.bodies)
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.bodies...)
}

func newConsumer(t *testing.T, b *Broker, topic, channel string, cfg *nsq.Config, h nsq.Handler) *nsq.Consumer {
	t.Helper()
	if cfg == nil {
		cfg = nsq.NewConfig()
	}
	c, err := nsq.NewConsumer(topic, channel, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetLogger(nil, nsq.LogLevelError)
	c.AddHandler(h)
	if err := c.ConnectToNSQD(b.TCPAddr().String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		select {
		case <-c.StopChan:
		case <-time.After(5 * time.Second):
			t.Error("consumer did not stop")
		}
	})
	return c
}

func TestPublishAndConsume(t *testing.T) {
	b := startTestBroker(t, nil)
	p := newProducer(t, b, nil)
	if err := p.Publish("orders", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := p.MultiPublish("orders", [][]byte{[]byte("two"), []byte("three")}); err != nil {
		t.Fatal(err)
	}
	if err := p.DeferredPublish("orders", 50*time.Millisecond, []byte("four")); err != nil {
		t.Fatal(err)
	}
	h := &collector{}
	newConsumer(t, b, "orders", "ch", nil, h)
	waitFor(t, 5*time.Second, "4 messages", func() bool { return h.count() == 4 })
	got := map[string]bool{}
	for _, s := range h.snapshot() {
		got[s] = true
	}
	for _, want := range []string{"one", "two", "three", "four"} {
		if !got[want] {
			t.Errorf("missing %q in %v", want, h.snapshot())
		}
	}
	ch := b.ExistingTopic("orders").ExistingChannel("ch")
	waitFor(t, 5*time.Second, "all finished", func() bool { return ch.inFlightCount.Load() == 0 })
}

func TestDeferredPublishWaitsForDelay(t *testing.T) {
	b := startTestBroker(t, nil)
	p := newProducer(t, b, nil)
	const delay = 300 * time.Millisecond
	start := time.Now()
	if err := p.DeferredPublish("later", delay, []byte("x")); err != nil {
		t.Fatal(err)
	}
	var arrived time.Time
	var mu sync.Mutex
	h := &collector{handle: func(*nsq.Message) error {
		mu.Lock()
		arrived = time.Now()
		mu.Unlock()
		return nil
	}}
	newConsumer(t, b, "later", "ch", nil, h)
	waitFor(t, 5*time.Second, "deferred message", func() bool { return h.count() == 1 })
	mu.Lock()
	defer mu.Unlock()
	if got := arrived.Sub(start); got < delay {
		t.Fatalf("deferred message arrived after %s, before its %s delay", got, delay)
	}
	if got := arrived.Sub(start); got > delay+time.Second {
		t.Fatalf("deferred message arrived after %s, long past its %s delay", got, delay)
	}
}

func TestRequeueAttempts(t *testing.T) {
	b := startTestBroker(t, nil)
	p := newProducer(t, b, nil)
	if err := p.Publish("retry", []byte("now")); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish("retry", []byte("delayed")); err != nil {
		t.Fatal(err)
	}
	type delivery struct {
		body     string
		attempts uint16
		at       time.Time
	}
	var mu sync.Mutex
	var seen []delivery
	firstDelayed := time.Time{}
	cfg := nsq.NewConfig()
	cfg.MaxAttempts = 0
	h := &collector{handle: func(m *nsq.Message) error {
		m.DisableAutoResponse()
		mu.Lock()
		seen = append(seen, delivery{string(m.Body), m.Attempts, time.Now()})
		mu.Unlock()
		switch {
		case m.Attempts < 3 && string(m.Body) == "now":
			m.RequeueWithoutBackoff(0)
		case m.Attempts < 2 && string(m.Body) == "delayed":
			mu.Lock()
			firstDelayed = time.Now()
			mu.Unlock()
			m.RequeueWithoutBackoff(200 * time.Millisecond)
		default:
			m.Finish()
		}
		return nil
	}}
	newConsumer(t, b, "retry", "ch", cfg, h)
	waitFor(t, 5*time.Second, "5 deliveries", func() bool { return h.count() == 5 })
	mu.Lock()
	defer mu.Unlock()
	var nowAttempts []uint16
	var delayedAttempts []uint16
	var secondDelayed time.Time
	for _, d := range seen {
		if d.body == "now" {
			nowAttempts = append(nowAttempts, d.attempts)
		} else {
			delayedAttempts = append(delayedAttempts, d.attempts)
			secondDelayed = d.at
		}
	}
	if len(nowAttempts) != 3 || nowAttempts[0] != 1 || nowAttempts[1] != 2 || nowAttempts[2] != 3 {
		t.Errorf("REQ 0 attempts = %v, want [1 2 3]", nowAttempts)
	}
	if len(delayedAttempts) != 2 || delayedAttempts[1] != 2 {
		t.Errorf("REQ with delay attempts = %v, want [1 2]", delayedAttempts)
	}
	if gap := secondDelayed.Sub(firstDelayed); gap < 200*time.Millisecond {
		t.Errorf("requeued message came back after %s, before its 200ms delay", gap)
	}
	ch := b.ExistingTopic("retry").ExistingChannel("ch")
	if got := ch.requeueCount.Load(); got != 3 {
		t.Errorf("channel requeue_count = %d, want 3", got)
	}
}

func TestTimeoutRedeliversAndTouchExtends(t *testing.T) {
	b := startTestBroker(t, nil)
	p := newProducer(t, b, nil)
	for _, body := range []string{"slow", "touched"} {
		if err := p.Publish("timeouts", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := nsq.NewConfig()
	cfg.MsgTimeout = time.Second
	var mu sync.Mutex
	var touchedDone bool
	var slowAttempts []uint16
	var firstSlow *nsq.Message
	h := &collector{handle: func(m *nsq.Message) error {
		m.DisableAutoResponse()
		switch string(m.Body) {
		case "slow":
			mu.Lock()
			slowAttempts = append(slowAttempts, m.Attempts)
			if m.Attempts == 1 {
				firstSlow = m // left to time out
			} else {
				// The late FIN of the timed-out delivery fails (E_FIN_FAILED,
				// not fatal); it settles go-nsq's own in-flight count.
				firstSlow.Finish()
				m.Finish()
			}
			mu.Unlock()
		case "touched":
			// Hold it for 2.5 timeouts, touching every 400ms: it must not be
			// redelivered.
			go func() {
				for i := 0; i < 6; i++ {
					time.Sleep(400 * time.Millisecond)
					m.Touch()
				}
				m.Finish()
				mu.Lock()
				touchedDone = true
				mu.Unlock()
			}()
		}
		return nil
	}}
	newConsumer(t, b, "timeouts", "ch", cfg, h)
	ch := func() *Channel { return b.ExistingTopic("timeouts").ExistingChannel("ch") }
	waitFor(t, 10*time.Second, "touched message finished", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return touchedDone
	})
	waitFor(t, 5*time.Second, "nothing in flight", func() bool { return ch().inFlightCount.Load() == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(slowAttempts) != 2 || slowAttempts[1] != 2 {
		t.Errorf("timed-out message deliveries = %v, want attempts [1 2]", slowAttempts)
	}
	bodies := h.snapshot()
	touchedCount := 0
	for _, s := range bodies {
		if s == "touched" {
			touchedCount++
		}
	}
	if touchedCount != 1 {
		t.Errorf("touched message delivered %d times, want 1 (deliveries %v)", touchedCount, bodies)
	}
	if got := ch().timeoutCount.Load(); got != 1 {
		t.Errorf("timeout_count = %d, want 1", got)
	}
}

func TestEveryChannelGetsEveryMessage(t *testing.T) {
	b := startTestBroker(t, nil)
	p := newProducer(t, b, nil)
	// Channels exist before publishing (a topic with no channel keeps
	// its messages for the first channel only).
	topic, err := b.Topic("fanout")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := topic.Channel(name); err != nil {
			t.Fatal(err)
		}
	}
	const n = 100
	for i := 0; i < n; i++ {
		if err := p.Publish("fanout", []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	ha, hb := &collector{}, &collector{}
	newConsumer(t, b, "fanout", "a", nil, ha)
	newConsumer(t, b, "fanout", "b", nil, hb)
	waitFor(t, 5*time.Second, "both channels complete", func() bool { return ha.count() >= n && hb.count() >= n })
	for name, h := range map[string]*collector{"a": ha, "b": hb} {
		seen := map[string]int{}
		for _, s := range h.snapshot() {
			seen[s]++
		}
		if len(seen) != n {
			t.Errorf("channel %s got %d distinct messages, want %d", name, len(seen), n)
		}
	}
}

func TestEphemeralChannelGoesWithLastClient(t *testing.T) {
	b := startTestBroker(t, nil)
	p := newProducer(t, b, nil)
	if err := p.Publish("eph", []byte("x")); err != nil {
		t.Fatal(err)
	}
	h := &collector{}
	c, err := nsq.NewConsumer("eph", "tmp#ephemeral", nsq.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.SetLogger(nil, nsq.LogLevelError)
	c.AddHandler(h)
	if err := c.ConnectToNSQD(b.TCPAddr().String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "message", func() bool { return h.count() == 1 })
	if b.ExistingTopic("eph").ExistingChannel("tmp#ephemeral") == nil {
		t.Fatal("ephemeral channel missing while its client is connected")
	}
	c.Stop()
	<-c.StopChan
	waitFor(t, 5*time.Second, "ephemeral channel deleted", func() bool {
		return b.ExistingTopic("eph").ExistingChannel("tmp#ephemeral") == nil
	})
	md, err := readMetadata(b.opts.DataPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tm := range md.Topics {
		for _, cm := range tm.Channels {
			if cm.Name == "tmp#ephemeral" {
				t.Error("ephemeral channel written to nsqd.dat")
			}
		}
	}
}

// TestEphemeralResubscribe: a client that subscribes to an ephemeral
// channel just as its last client leaves either keeps the old channel or
// gets a fresh one, never an error, and receives what is published next.
func TestEphemeralResubscribe(t *testing.T) {
	b := startTestBroker(t, nil)
	const topic, channel = "churn#ephemeral", "c#ephemeral"
	prev := dialRaw(t, b)
	prev.send(t, "SUB", nil, topic, channel)
	prev.expectResponse(t, "OK")
	for i := 0; i < 300; i++ {
		next := dialRaw(t, b)
		prev.conn.Close() // the last client leaves as the next one arrives
		next.send(t, "SUB", nil, topic, channel)
		next.expectResponse(t, "OK")
		prev = next
	}
	p := newProducer(t, b, nil)
	if err := p.Publish(topic, []byte("after the churn")); err != nil {
		t.Fatal(err)
	}
	prev.send(t, "RDY", nil, "1")
	if m := prev.expectMessage(t); string(m.Body) != "after the churn" {
		t.Fatalf("got %q", m.Body)
	}
}

// TestDeletedChannelStartsEmpty: messages on disk go with their channel; a
// channel created again under the same name does not get them back.
func TestDeletedChannelStartsEmpty(t *testing.T) {
	b := startTestBroker(t, func(o *Options) { o.MemQueueSize = 0; o.SyncEvery = 1 })
	topic, _ := b.Topic("gone")
	if _, err := topic.Channel("c"); err != nil {
		t.Fatal(err)
	}
	if err := topic.Publish([][]byte{[]byte("1"), []byte("2"), []byte("3")}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "3 on disk", func() bool { return topic.ExistingChannel("c").Depth() == 3 })
	topic.DeleteChannel("c")
	ch, err := topic.Channel("c")
	if err != nil {
		t.Fatal(err)
	}
	if d := ch.Depth(); d != 0 {
		t.Fatalf("re-created channel has depth %d, want 0", d)
	}
	h := &collector{}
	newConsumer(t, b, "gone", "c", nil, h)
	if err := topic.Publish([][]byte{[]byte("new")}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the new message", func() bool { return h.count() >= 1 })
	if got := h.snapshot(); len(got) != 1 || got[0] != "new" {
		t.Fatalf("re-created channel delivered %v, want only [new]", got)
	}
}

// An MPUB body that went wholly to disk is reused for the next MPUB; one
// whose messages are still queued in memory must not be. With room for 3
// in memory, the first MPUB keeps 3 of its 5 messages there, and the MPUBs
// after it go to disk through a reused buffer: every body still arrives
// intact.
func TestMPUBBufferReuseKeepsQueuedBodies(t *testing.T) {
	b := startTestBroker(t, func(o *Options) { o.MemQueueSize = 3 })
	topic, err := b.Topic("reuse")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topic.Channel("c"); err != nil {
		t.Fatal(err)
	}
	pub := dialRaw(t, b)
	want := map[string]bool{}
	for batch := 0; batch < 4; batch++ {
		var bodies [][]byte
		for i := 0; i < 5; i++ {
			body := fmt.Sprintf("batch-%d-message-%d-%s", batch, i, strings.Repeat(string(rune('a'+batch)), 20))
			bodies = append(bodies, []byte(body))
			want[body] = true
		}
		pub.send(t, "MPUB", protocol.AppendMPUBBody(nil, bodies), "reuse")
		pub.expectResponse(t, "OK")
	}
	sub := dialRaw(t, b)
	sub.send(t, "SUB", nil, "reuse", "c")
	sub.expectResponse(t, "OK")
	sub.send(t, "RDY", nil, "100")
	for len(want) > 0 {
		m := sub.expectMessage(t)
		if !want[string(m.Body)] {
			t.Fatalf("received %q: not a published body, or received twice", m.Body)
		}
		delete(want, string(m.Body))
		sub.send(t, "FIN", nil, string(m.ID[:]))
	}
}

// subscribedChannel creates topic and channel before anything is
// published, so every publish reaches the channel's own queues.
func subscribedChannel(t *testing.T, b *Broker, topic, channel string) *Channel {
	t.Helper()
	tp, err := b.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := tp.Channel(channel)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// Memory fills before the disk does, so its messages are older: a
// consumer gets them first, then the disk's, in publish order. Once
// memory has drained and fills again, the disk's are the older ones.
func TestOldestFirstAcrossMemoryAndDisk(t *testing.T) {
	b := startTestBroker(t, func(o *Options) { o.MemQueueSize = 10 })
	subscribedChannel(t, b, "order", "c")
	p := newProducer(t, b, nil)
	var want []string
	for i := 0; i < 30; i++ {
		want = append(want, fmt.Sprintf("m%02d", i))
		if err := p.Publish("order", []byte(want[i])); err != nil {
			t.Fatal(err)
		}
	}
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 1
	h := &collector{}
	newConsumer(t, b, "order", "c", cfg, h)
	waitFor(t, 5*time.Second, "30 messages", func() bool { return h.count() == 30 })
	if got := strings.Join(h.snapshot(), " "); got != strings.Join(want, " ") {
		t.Fatalf("delivered in the order\n%s\nwant\n%s", got, strings.Join(want, " "))
	}
}

// A consumer's pump reads the next disk record only once the messages of
// the last are handed out: a backlog is read as it is delivered, not
// pulled into memory a record per FIN.
func TestDiskBacklogReadAsDelivered(t *testing.T) {
	b := startTestBroker(t, func(o *Options) { o.MemQueueSize = 0 })
	ch := subscribedChannel(t, b, "backlog", "c")
	p := newProducer(t, b, nil)
	const batches, perBatch = 20, 100
	for i := 0; i < batches; i++ {
		bodies := make([][]byte, perBatch)
		for j := range bodies {
			bodies[j] = []byte(fmt.Sprintf("b%d-%d", i, j))
		}
		if err := p.MultiPublish("backlog", bodies); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	const held = 6
	h := &collector{}
	h.handle = func(*nsq.Message) error {
		if h.count() == held {
			<-release // hold the consumer's one RDY
		}
		return nil
	}
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = 1
	newConsumer(t, b, "backlog", "c", cfg, h)
	waitFor(t, 5*time.Second, fmt.Sprintf("%d messages", held), func() bool { return h.count() == held })
	ch.mu.Lock()
	queued := ch.fromDisk.len()
	ch.mu.Unlock()
	if queued >= perBatch {
		t.Fatalf("%d messages read off disk and waiting after %d deliveries; want fewer than one record (%d)", queued, held, perBatch)
	}
	close(release)
	waitFor(t, 10*time.Second, "every message", func() bool { return h.count() == batches*perBatch })
}
