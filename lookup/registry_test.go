package lookup

import (
	"slices"
	"testing"
	"time"
)

// startClockedLookup starts a lookup whose registry reads time from the
// returned clock.
func startClockedLookup(t *testing.T, configure func(*Options)) (*Lookup, *fakeClock) {
	t.Helper()
	clock := newFakeClock()
	l := newTestLookup(t, configure)
	l.registry.now = clock.Now
	startAndCleanUp(t, l)
	return l, clock
}

// A producer is hidden once its last IDENTIFY or PING is more than the
// inactive timeout ago, and back after a PING.
func TestInactiveTimeoutBoundary(t *testing.T) {
	l, clock := startClockedLookup(t, func(o *Options) { o.InactiveProducerTimeout = time.Minute })
	c := dialV1(t, l.TCPAddr())
	c.identify(testPeer("a", 4150))
	c.mustCommand("REGISTER orders")

	clock.Advance(time.Minute)
	if r, _ := lookupTopic(t, l, "orders"); len(r.Producers) != 1 {
		t.Fatalf("at exactly the timeout: producers %v, want it still active", producerNames(r.Producers))
	}
	clock.Advance(time.Nanosecond)
	if r, _ := lookupTopic(t, l, "orders"); len(r.Producers) != 0 {
		t.Fatalf("past the timeout: producers %v, want none", producerNames(r.Producers))
	}
	if nodes := nodesOf(t, l); len(nodes) != 0 {
		t.Fatalf("past the timeout: /nodes %+v, want none", nodes)
	}
	c.mustCommand("PING")
	if r, _ := lookupTopic(t, l, "orders"); len(r.Producers) != 1 {
		t.Fatalf("after PING: producers %v, want a", producerNames(r.Producers))
	}
	if nodes := nodesOf(t, l); len(nodes) != 1 {
		t.Fatalf("after PING: /nodes %+v, want a", nodes)
	}
}

// A tombstone hides the producer of one topic from /lookup (not from
// /nodes, which flags it) for the tombstone lifetime, then expires without
// unregistering anything.
func TestTombstoneLifetime(t *testing.T) {
	l, clock := startClockedLookup(t, func(o *Options) { o.TombstoneLifetime = 45 * time.Second })
	a := dialV1(t, l.TCPAddr())
	a.identify(testPeer("a", 4150))
	b := dialV1(t, l.TCPAddr())
	b.identify(testPeer("b", 4250))
	for _, c := range []*v1Client{a, b} {
		c.mustCommand("REGISTER orders")
		c.mustCommand("REGISTER events")
	}

	if resp := post(t, l, "/topic/tombstone?topic=orders&node=a:4151"); resp.status != 200 || resp.body != "" {
		t.Fatalf("tombstone: %d %q", resp.status, resp.body)
	}
	r, _ := lookupTopic(t, l, "orders")
	if got := producerNames(r.Producers); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("/lookup?topic=orders after tombstone = %v, want [b]", got)
	}
	r, _ = lookupTopic(t, l, "events")
	if got := producerNames(r.Producers); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("/lookup?topic=events = %v, want both: tombstones are per topic", got)
	}
	nodes := nodesOf(t, l)
	if len(nodes) != 2 || nodes[0].BroadcastAddress != "a" ||
		!slices.Equal(nodes[0].Topics, []string{"events", "orders"}) ||
		!slices.Equal(nodes[0].Tombstones, []bool{false, true}) ||
		!slices.Equal(nodes[1].Tombstones, []bool{false, false}) {
		t.Fatalf("/nodes = %+v", nodes)
	}
	// Registering again does not lift the tombstone.
	a.mustCommand("REGISTER orders")
	if r, _ := lookupTopic(t, l, "orders"); len(r.Producers) != 1 {
		t.Fatalf("after re-REGISTER: %v", producerNames(r.Producers))
	}

	clock.Advance(45*time.Second - time.Nanosecond)
	if r, _ := lookupTopic(t, l, "orders"); len(r.Producers) != 1 {
		t.Fatalf("just before the lifetime ends: %v", producerNames(r.Producers))
	}
	clock.Advance(time.Nanosecond)
	r, _ = lookupTopic(t, l, "orders")
	if got := producerNames(r.Producers); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after the lifetime: %v, want both back", got)
	}
	if nodes := nodesOf(t, l); !slices.Equal(nodes[0].Tombstones, []bool{false, false}) {
		t.Fatalf("/nodes after the lifetime = %+v", nodes)
	}
}

// With real (short) durations: a tombstone expires on its own.
func TestTombstoneExpires(t *testing.T) {
	l := startTestLookup(t, func(o *Options) { o.TombstoneLifetime = 50 * time.Millisecond })
	c := dialV1(t, l.TCPAddr())
	c.identify(testPeer("a", 4150))
	c.mustCommand("REGISTER orders")
	post(t, l, "/topic/tombstone?topic=orders&node=a:4151")
	waitFor(t, "the tombstone to expire", func() bool {
		r, _ := lookupTopic(t, l, "orders")
		nodes := nodesOf(t, l)
		return len(r.Producers) == 1 && len(nodes) == 1 && slices.Equal(nodes[0].Tombstones, []bool{false})
	})
}

func TestRegistryWildcards(t *testing.T) {
	r := newRegistry(time.Minute, time.Minute)
	a := &peer{id: "a", info: peerInfo{BroadcastAddress: "a", HTTPPort: 1}}
	b := &peer{id: "b", info: peerInfo{BroadcastAddress: "b", HTTPPort: 2}}
	r.identify(a)
	r.identify(b)
	r.register(a, "t1", "c1")
	r.register(b, "t2", "c2")
	r.register(b, "t1", "")

	// nsqlookupd's "*" matches every topic in queries.
	channels, producers, ok := r.lookup("*")
	if !ok || !slices.Equal(channels, []string{"c1", "c2"}) || len(producers) != 2 {
		t.Fatalf("lookup(*) = %v, %v, %v", channels, producers, ok)
	}
	if got := r.channels("*"); !slices.Equal(got, []string{"c1", "c2"}) {
		t.Fatalf("channels(*) = %v", got)
	}
	if n := r.tombstone("*", "b:2"); n != 2 {
		t.Fatalf("tombstone(*) marked %d, want both of b's topics", n)
	}
	if deleted := r.deleteTopic("*"); len(deleted) != 4 {
		t.Fatalf("deleteTopic(*) deleted %v", deleted)
	}
	if got := r.topics(); len(got) != 0 {
		t.Fatalf("topics after deleteTopic(*) = %v", got)
	}
}

func TestRegistryRemovePeer(t *testing.T) {
	r := newRegistry(time.Minute, time.Minute)
	a := &peer{id: "a"}
	r.identify(a)
	r.register(a, "t", "c")
	r.register(a, "e#ephemeral", "")
	removed := r.removePeer("a")
	if len(removed) != 4 {
		t.Fatalf("removePeer = %v, want client, t, t/c, e#ephemeral", removed)
	}
	if got := r.topics(); !slices.Equal(got, []string{"t"}) {
		t.Fatalf("topics = %v", got)
	}
	if r.removePeer("a") != nil {
		t.Fatal("second removePeer removed something")
	}
}
