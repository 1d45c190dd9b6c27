package integration

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"
)

func producer(t *testing.T, addr string) *nsq.Producer {
	t.Helper()
	p, err := nsq.NewProducer(addr, nsq.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	p.SetLogger(nil, nsq.LogLevelError)
	t.Cleanup(p.Stop)
	return p
}

type received struct {
	mu       sync.Mutex
	at       map[string]time.Time
	attempts map[string]uint16
	count    int
	hold     bool // leave messages unanswered (in flight)
	held     []*nsq.Message
}

func newReceived(hold bool) *received {
	return &received{at: map[string]time.Time{}, attempts: map[string]uint16{}, hold: hold}
}

func (r *received) HandleMessage(m *nsq.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	if _, ok := r.at[string(m.Body)]; !ok {
		r.at[string(m.Body)] = time.Now()
	}
	r.attempts[string(m.Body)] = m.Attempts
	if r.hold {
		m.DisableAutoResponse()
		r.held = append(r.held, m)
	}
	return nil
}

func (r *received) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.at)
}

func consumer(t *testing.T, addr, topic, channel string, maxInFlight int, h nsq.Handler) *nsq.Consumer {
	t.Helper()
	cfg := nsq.NewConfig()
	cfg.MaxInFlight = maxInFlight
	c, err := nsq.NewConsumer(topic, channel, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetLogger(nil, nsq.LogLevelError)
	c.AddHandler(h)
	if err := c.ConnectToNSQD(addr); err != nil {
		t.Fatal(err)
	}
	return c
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRestartKeepsQueuedInFlightAndDeferred stops wren with SIGTERM while a
// channel has messages queued, in flight with a consumer, and deferred, then
// starts it again on the same data path: every message comes back, in-flight
// ones with their attempts, deferred ones no earlier than their delay.
func TestRestartKeepsQueuedInFlightAndDeferred(t *testing.T) {
	for _, memQueue := range []string{"10000", "0"} {
		t.Run("mem-queue-size="+memQueue, func(t *testing.T) {
			data := t.TempDir()
			w := startWren(t, data, "--mem-queue-size="+memQueue)

			holder := newReceived(true)
			c := consumer(t, w.tcpAddr, "orders", "billing", 3, holder)
			p := producer(t, w.tcpAddr)
			const queued = 20
			for i := 0; i < queued; i++ {
				if err := p.Publish("orders", []byte(fmt.Sprintf("msg-%02d", i))); err != nil {
					t.Fatal(err)
				}
			}
			const delay = 3 * time.Second
			deferredAt := time.Now()
			for i := 0; i < 3; i++ {
				if err := p.DeferredPublish("orders", delay, []byte(fmt.Sprintf("deferred-%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, 5*time.Second, "3 messages in flight", func() bool { return holder.distinct() == 3 })

			w.stop()
			c.Stop()
			p.Stop()

			w2 := startWren(t, data, "--mem-queue-size="+memQueue)
			got := newReceived(false)
			c2 := consumer(t, w2.tcpAddr, "orders", "billing", 50, got)
			defer c2.Stop()
			waitFor(t, 15*time.Second, "every message after restart", func() bool { return got.distinct() == queued+3 })

			got.mu.Lock()
			defer got.mu.Unlock()
			var names []string
			for body := range got.at {
				names = append(names, body)
			}
			sort.Strings(names)
			for i := 0; i < queued; i++ {
				if _, ok := got.at[fmt.Sprintf("msg-%02d", i)]; !ok {
					t.Errorf("msg-%02d lost across restart; got %v", i, names)
				}
			}
			for i := 0; i < 3; i++ {
				body := fmt.Sprintf("deferred-%d", i)
				at, ok := got.at[body]
				if !ok {
					t.Errorf("%s lost across restart", body)
					continue
				}
				if at.Sub(deferredAt) < delay {
					t.Errorf("%s delivered %s after publish, before its %s delay", body, at.Sub(deferredAt), delay)
				}
			}
			holder.mu.Lock()
			for _, m := range holder.held {
				if a := got.attempts[string(m.Body)]; a != 2 {
					t.Errorf("in-flight %s redelivered with attempts %d, want 2", m.Body, a)
				}
			}
			holder.mu.Unlock()
		})
	}
}
