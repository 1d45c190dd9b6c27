package broker

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsqio/go-nsq"

	"wren/protocol"
)

// topologyConsumer is a raw V2 consumer that IDENTIFYs with a region and
// zone (go-nsq cannot send them), sets its RDY count and never finishes a
// message, so its RDY count bounds what it receives.
type topologyConsumer struct {
	zone string
	got  atomic.Int64
}

func subscribeWithTopology(t *testing.T, b *Broker, topic, channel, region, zone string, rdy int) *topologyConsumer {
	t.Helper()
	rc := dialRaw(t, b)
	rc.identify(t, map[string]any{"topology_region": region, "topology_zone": zone})
	rc.send(t, "SUB", nil, topic, channel)
	rc.expectResponse(t, "OK")
	rc.send(t, "RDY", nil, strconv.Itoa(rdy))
	tc := &topologyConsumer{zone: zone}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			frameType, _, err := rc.readFrame()
			if err != nil {
				return
			}
			if frameType == protocol.FrameTypeMessage {
				tc.got.Add(1)
			}
		}
	}()
	t.Cleanup(func() {
		_ = rc.conn.Close()
		<-done
	})
	return tc
}

// waitForReady waits until the channel has clients consumers whose RDY
// counts add up to rdy, so that publishing finds them all ready.
func waitForReady(t *testing.T, b *Broker, topic, channel string, clients int, rdy int64) {
	t.Helper()
	waitFor(t, 5*time.Second, "consumers ready", func() bool {
		snap := b.statsSnapshot(topic, channel, true)
		if len(snap.Topics) != 1 || len(snap.Topics[0].Channels) != 1 {
			return false
		}
		cs := snap.Topics[0].Channels[0].Clients
		var sum int64
		for _, c := range cs {
			sum += c.ReadyCount
		}
		return len(cs) == clients && sum == rdy
	})
}

// channelStatsJSON is the channel's entry in /stats?format=json, as keys
// and raw values, so that left-out counters can be told from zeros.
func channelStatsJSON(t *testing.T, b *Broker, topic, channel string) map[string]json.RawMessage {
	t.Helper()
	var s struct {
		Topics []struct {
			Channels []map[string]json.RawMessage `json:"channels"`
		} `json:"topics"`
	}
	httpJSON(t, b.HTTPAddr().String(), "/stats?format=json&include_mem=false&topic="+topic+"&channel="+channel, &s)
	if len(s.Topics) != 1 || len(s.Topics[0].Channels) != 1 {
		t.Fatalf("/stats has no channel %s:%s", topic, channel)
	}
	return s.Topics[0].Channels[0]
}

// checkLocalityCounts checks the channel's per-locality counters; a zero
// must be left out of the JSON.
func checkLocalityCounts(t *testing.T, ch map[string]json.RawMessage, zone, region, global int) {
	t.Helper()
	for key, want := range map[string]int{
		"zone_local_msg_count":   zone,
		"region_local_msg_count": region,
		"global_msg_count":       global,
	} {
		raw, ok := ch[key]
		switch {
		case want == 0 && ok:
			t.Errorf("%s = %s, want it left out", key, raw)
		case want != 0 && string(raw) != strconv.Itoa(want):
			t.Errorf("%s = %q, want %d", key, raw, want)
		}
	}
}

func publishN(t *testing.T, b *Broker, topic string, n int) {
	t.Helper()
	p := newProducer(t, b, nil)
	for i := range n {
		if err := p.Publish(topic, []byte("m"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

func topologyNode(aware bool) func(*Options) {
	return func(o *Options) {
		o.TopologyRegion, o.TopologyZone = "region-a", "zone-a"
		if aware {
			o.Experiments = []string{string(ExperimentTopologyAwareConsumption)}
		}
	}
}

// TestTopologySameZoneFirst is NSQ master's TestSameZoneConsumerV2: two
// consumers in the node's zone and two in another, RDY 10 each, and 21
// messages. The same-zone pair gets 20, all its RDY counts allow; only the
// last goes to the other zone. In wren the outcome does not depend on
// timing: a far consumer defers while a near one has RDY capacity. The
// node is topologyNode(true): --topology-region, --topology-zone and
// --enable-experiment=topology-aware-consumption.
func TestTopologySameZoneFirst(t *testing.T) {
	b := startTestBroker(t, topologyNode(true))
	const topic, channel = "zones", "ch"
	var consumers []*topologyConsumer
	for _, zone := range []string{"zone-a", "zone-a", "zone-b", "zone-b"} {
		consumers = append(consumers, subscribeWithTopology(t, b, topic, channel, "", zone, 10))
	}
	waitForReady(t, b, topic, channel, 4, 40)
	publishN(t, b, topic, 21)

	count := func() (same, other int64) {
		for _, c := range consumers {
			if c.zone == "zone-a" {
				same += c.got.Load()
			} else {
				other += c.got.Load()
			}
		}
		return same, other
	}
	waitFor(t, 5*time.Second, "21 messages delivered", func() bool {
		same, other := count()
		return same+other == 21
	})
	if same, other := count(); same != 20 || other != 1 {
		t.Errorf("same zone got %d, other zone %d; want 20 and 1", same, other)
	}
	checkLocalityCounts(t, channelStatsJSON(t, b, topic, channel), 20, 0, 1)
}

// TestTopologyZoneRegionGlobal: the node's zone first, then its region,
// then anyone, here a go-nsq consumer, which sends no topology.
func TestTopologyZoneRegionGlobal(t *testing.T) {
	b := startTestBroker(t, topologyNode(true))
	const topic, channel = "tiers", "ch"
	zone := subscribeWithTopology(t, b, topic, channel, "region-a", "zone-a", 3)
	region := subscribeWithTopology(t, b, topic, channel, "region-a", "zone-b", 3)
	var global collector
	newConsumer(t, b, topic, channel, nil, &global)
	waitForReady(t, b, topic, channel, 3, 7)
	publishN(t, b, topic, 7)

	waitFor(t, 5*time.Second, "7 messages delivered", func() bool {
		return zone.got.Load()+region.got.Load()+int64(global.count()) == 7
	})
	if z, r, g := zone.got.Load(), region.got.Load(), global.count(); z != 3 || r != 3 || g != 1 {
		t.Errorf("zone got %d, region %d, global %d; want 3, 3, 1", z, r, g)
	}
	ch := channelStatsJSON(t, b, topic, channel)
	checkLocalityCounts(t, ch, 3, 3, 1)

	var clients []clientStats
	if err := json.Unmarshal(ch["clients"], &clients); err != nil {
		t.Fatal(err)
	}
	var places []string
	for _, c := range clients {
		places = append(places, c.TopologyRegion+"/"+c.TopologyZone)
	}
	if got := strings.Join(places, " "); got != "region-a/zone-a region-a/zone-b /" {
		t.Errorf("clients' region/zone in /stats: %q", got)
	}
}

// TestTopologyWithoutExperiment: region and zone are only reported; both
// consumers get messages and every in-memory delivery counts as global.
func TestTopologyWithoutExperiment(t *testing.T) {
	b := startTestBroker(t, topologyNode(false))
	const topic, channel = "plain", "ch"
	near := subscribeWithTopology(t, b, topic, channel, "region-a", "zone-a", 5)
	far := subscribeWithTopology(t, b, topic, channel, "region-b", "zone-b", 5)
	waitForReady(t, b, topic, channel, 2, 10)
	publishN(t, b, topic, 10)

	waitFor(t, 5*time.Second, "10 messages delivered", func() bool {
		return near.got.Load()+far.got.Load() == 10
	})
	if n, f := near.got.Load(), far.got.Load(); n != 5 || f != 5 {
		t.Errorf("near got %d, far %d; want 5 each", n, f)
	}
	checkLocalityCounts(t, channelStatsJSON(t, b, topic, channel), 0, 0, 10)
}

// TestTopologyDiskDeliveriesNotCounted: messages read back from the disk
// queue count in none of the locality counters, as in nsqd.
func TestTopologyDiskDeliveriesNotCounted(t *testing.T) {
	b := startTestBroker(t, func(o *Options) {
		topologyNode(true)(o)
		o.MemQueueSize = 0
	})
	const topic, channel = "ondisk", "ch"
	c := subscribeWithTopology(t, b, topic, channel, "region-a", "zone-a", 5)
	waitForReady(t, b, topic, channel, 1, 5)
	publishN(t, b, topic, 3)
	waitFor(t, 5*time.Second, "3 messages delivered", func() bool { return c.got.Load() == 3 })
	checkLocalityCounts(t, channelStatsJSON(t, b, topic, channel), 0, 0, 0)
}

// TestTopologyNearConsumerFull: a far consumer gets what a near one has
// no RDY capacity for, and everything once the near one sets RDY 0 or
// leaves; while the near one has capacity, it gets the messages.
func TestTopologyNearConsumerFull(t *testing.T) {
	for _, stop := range []string{"RDY 0", "close"} {
		t.Run(stop, func(t *testing.T) {
			b := startTestBroker(t, topologyNode(true))
			const topic, channel = "full", "ch"
			near := dialRaw(t, b)
			near.identify(t, map[string]any{"topology_zone": "zone-a"})
			near.send(t, "SUB", nil, topic, channel)
			near.expectResponse(t, "OK")
			near.send(t, "RDY", nil, "1")
			far := subscribeWithTopology(t, b, topic, channel, "", "zone-b", 10)
			waitForReady(t, b, topic, channel, 2, 11)
			inFlight := func(n int) func() bool {
				return func() bool {
					return b.statsSnapshot(topic, channel, false).Topics[0].Channels[0].InFlightCount == n
				}
			}

			publishN(t, b, topic, 4)
			m := near.expectMessage(t)
			waitFor(t, 5*time.Second, "3 messages to the far consumer", func() bool { return far.got.Load() == 3 })

			near.send(t, "FIN", nil, string(m.ID[:]))
			waitFor(t, 5*time.Second, "the FIN", inFlight(3))
			publishN(t, b, topic, 1)
			near.expectMessage(t)

			want := int64(5)
			if stop == "close" {
				// The near consumer's message in flight comes back too.
				_ = near.conn.Close()
				waitForReady(t, b, topic, channel, 1, 10)
				want++
			} else {
				near.send(t, "RDY", nil, "0")
				waitForReady(t, b, topic, channel, 2, 10)
			}
			publishN(t, b, topic, 2)
			waitFor(t, 5*time.Second, "the rest to the far consumer", func() bool { return far.got.Load() == want })
			waitFor(t, 5*time.Second, "nothing left queued", func() bool { return b.statsSnapshot(topic, channel, false).Topics[0].Channels[0].Depth == 0 })
		})
	}
}

func TestIdentifyTopology(t *testing.T) {
	for _, tc := range []struct {
		name         string
		configure    func(*Options)
		region, zone string
	}{
		{"unset", nil, "", ""},
		{"set", topologyNode(false), "region-a", "zone-a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startTestBroker(t, tc.configure)
			rc := dialRaw(t, b)
			resp := rc.identify(t, map[string]any{
				"feature_negotiation": true,
				"topology_region":     "client-region",
				"topology_zone":       "client-zone",
			})
			var got map[string]any
			if err := json.Unmarshal(resp, &got); err != nil {
				t.Fatalf("IDENTIFY reply %q: %v", resp, err)
			}
			if got["topology_region"] != tc.region || got["topology_zone"] != tc.zone {
				t.Errorf("IDENTIFY reply has region %#v, zone %#v; want %q, %q",
					got["topology_region"], got["topology_zone"], tc.region, tc.zone)
			}
			rc.send(t, "PUB", []byte("x"), "identified")
			rc.expectResponse(t, "OK")
			snap := b.statsSnapshot("", "", true)
			if len(snap.Producers) != 1 || snap.Producers[0].TopologyRegion != "client-region" ||
				snap.Producers[0].TopologyZone != "client-zone" {
				t.Errorf("/stats producers: %+v", snap.Producers)
			}

			var info map[string]any
			httpJSON(t, b.HTTPAddr().String(), "/info", &info)
			if info["topology_region"] != tc.region || info["topology_zone"] != tc.zone {
				t.Errorf("/info has region %#v, zone %#v; want %q, %q",
					info["topology_region"], info["topology_zone"], tc.region, tc.zone)
			}
		})
	}
}

// TestIdentifyTopologyGoNSQ: go-nsq, which sends no topology, still
// negotiates with a node that has one.
func TestIdentifyTopologyGoNSQ(t *testing.T) {
	b := startTestBroker(t, topologyNode(true))
	var got collector
	newConsumer(t, b, "gonsq", "ch", nsq.NewConfig(), &got)
	publishN(t, b, "gonsq", 2)
	waitFor(t, 5*time.Second, "2 messages", func() bool { return got.count() == 2 })
}

// TestLookupTopology: the broker tells its lookups its region and zone,
// and the lookup shows them in /nodes, /lookup and /debug.
func TestLookupTopology(t *testing.T) {
	l := startLookupForBroker(t)
	b := startTestBroker(t, func(o *Options) {
		topologyNode(false)(o)
		o.LookupdTCPAddrs = []string{l.TCPAddr().String()}
	})
	if _, err := b.Topic("placed"); err != nil {
		t.Fatal(err)
	}
	type place struct {
		Zone   string `json:"topology_zone"`
		Region string `json:"topology_region"`
	}
	want := place{Zone: "zone-a", Region: "region-a"}
	waitFor(t, 5*time.Second, "the broker in /lookup", func() bool {
		var body struct {
			Producers []place `json:"producers"`
		}
		return lookupGet(t, l, "/lookup?topic=placed", &body) == 200 && len(body.Producers) == 1
	})
	var nodes struct {
		Producers []place `json:"producers"`
	}
	lookupGet(t, l, "/nodes", &nodes)
	if len(nodes.Producers) != 1 || nodes.Producers[0] != want {
		t.Errorf("/nodes: %+v, want %+v", nodes.Producers, want)
	}
	var debug map[string][]place
	lookupGet(t, l, "/debug", &debug)
	if got := debug["topic:placed:"]; len(got) != 1 || got[0] != want {
		t.Errorf("/debug topic:placed: %+v, want %+v", got, want)
	}
}

func TestUnknownExperimentRefused(t *testing.T) {
	opts := testOptions(t)
	opts.Experiments = []string{"topology-aware-consumption", "time-travel"}
	err := opts.Validate()
	want := `--enable-experiment: unknown experiment "time-travel" (valid: "topology-aware-consumption")`
	if err == nil || err.Error() != want {
		t.Errorf("Validate: %v, want %s", err, want)
	}
}
