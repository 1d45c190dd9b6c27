package broker

// Topology-aware delivery (NSQ master's experiment of PR #1301).
//
// A node may say where it runs (--topology-region, --topology-zone), and
// so may a consumer, in IDENTIFY (topology_region, topology_zone). Without
// --enable-experiment=topology-aware-consumption these are only reported.
// With it, a channel offers each message first to a ready consumer in the
// node's zone, then to one in its region, then to anyone.
//
// nsqd does this with unbuffered zone and region Go channels that a put
// tries before the memory channel. wren has no per-message hand-over: each
// client's pump pops batches from the channel under Channel.mu, and idle
// pumps wait in Channel.waiting until a put wakes them. The preference is
// built on that, and only when the experiment is on:
//
//   - A put wakes only the waiting clients of the nearest tier that has a
//     ready one (RDY capacity), instead of every waiting client.
//   - A pop by a client defers (takes nothing, waits like an idle client)
//     while a nearer client of the channel is ready, and wakes that one.
//     So a busy far pump that loops back for more does not take messages
//     a near consumer could take, and neither does one a put woke while
//     the near consumer was busy sending.
//   - A near client whose pump finds itself without capacity, or that
//     leaves the channel, hands what is queued on: it wakes the waiting
//     clients, which now find no nearer one ready and take the messages.
//     That hand-over is what keeps deferring from ever stranding messages:
//     every deferral wakes the nearer client, whose pump next either pops
//     or, without capacity, hands on. Capacity is read without the near
//     client's locks; a stale view (messages popped, not yet in flight)
//     only makes a far pump defer once more before the hand-over.
//
// A near consumer with capacity whose socket is stalled holds messages
// until its write fails or its in-flight fills its RDY count: the cost of
// preferring it. Deferring covers memory and messages read from disk
// alike; only memory deliveries are counted per locality, as in nsqd.
//
// Without the experiment the hot path gains two untaken branches and one
// atomic add per batch popped from memory (counted as global).

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// Experiment names an experimental feature, enabled with
// --enable-experiment.
type Experiment string

// ExperimentTopologyAwareConsumption prefers consumers in the node's zone,
// then region.
const ExperimentTopologyAwareConsumption Experiment = "topology-aware-consumption"

// allExperiments lists the experiments --enable-experiment accepts.
var allExperiments = []Experiment{ExperimentTopologyAwareConsumption}

// HasExperiment reports whether e was enabled.
func (o *Options) HasExperiment(e Experiment) bool {
	return slices.Contains(o.Experiments, string(e))
}

func validateExperiments(names []string) error {
	for _, name := range names {
		if !slices.Contains(allExperiments, Experiment(name)) {
			valid := make([]string, len(allExperiments))
			for i, e := range allExperiments {
				valid[i] = fmt.Sprintf("%q", e)
			}
			return fmt.Errorf("--enable-experiment: unknown experiment %q (valid: %s)", name, strings.Join(valid, ", "))
		}
	}
	return nil
}

// locality is how near a consumer is to the node, nearer ones greater.
type locality uint8

const (
	localityGlobal locality = iota
	localityRegion
	localityZone
)

// topology is the node's place and whether consumers are preferred by it.
type topology struct {
	region, zone string
	aware        bool
}

func newTopology(o *Options) topology {
	return topology{
		region: o.TopologyRegion,
		zone:   o.TopologyZone,
		aware:  o.HasExperiment(ExperimentTopologyAwareConsumption),
	}
}

// localityOf places a consumer that identified with region and zone.
// Without the experiment every consumer is global. An unset zone or
// region matches nothing (nsqd counts a consumer without a zone as
// zone-local on a node without one).
func (t topology) localityOf(region, zone string) locality {
	switch {
	case !t.aware:
		return localityGlobal
	case zone != "" && zone == t.zone:
		return localityZone
	case region != "" && region == t.region:
		return localityRegion
	}
	return localityGlobal
}

// localityCounts are a channel's in-memory deliveries by the receiving
// client's locality.
type localityCounts [3]atomic.Uint64

func (l *localityCounts) add(loc locality, n int) {
	if n > 0 {
		l[loc].Add(uint64(n))
	}
}

// deferToNearerLocked reports whether cl should leave the queued messages
// to a nearer client of the channel that is ready for them; it wakes every
// such client. c.mu must be held.
func (c *Channel) deferToNearerLocked(cl *client) bool {
	deferred := false
	for _, near := range c.nearby {
		if near.locality > cl.locality && near.readyCapacity() > 0 {
			near.wakeUp()
			deferred = true
		}
	}
	return deferred
}

// wakeNearestLocked wakes the waiting clients of the nearest locality that
// has a ready one, or every waiting client when none is ready. The others
// keep waiting: the woken ones take the messages or hand them on.
// c.mu must be held.
func (c *Channel) wakeNearestLocked() {
	nearest, found := localityGlobal, false
	for cl := range c.waiting {
		if cl.locality > nearest && cl.readyCapacity() > 0 {
			nearest, found = cl.locality, true
		}
	}
	for cl := range c.waiting {
		if !found || cl.locality == nearest {
			cl.wakeUp()
			delete(c.waiting, cl)
		}
	}
}

// handOn wakes every waiting client when messages are queued: a near
// client without capacity lets the others take them.
func (c *Channel) handOn() {
	c.mu.Lock()
	c.handOnLocked()
	c.mu.Unlock()
}

// c.mu must be held.
func (c *Channel) handOnLocked() {
	if c.memory.len() > 0 || c.fromDisk.len() > 0 {
		c.wakeAllWaitersLocked()
	}
}

// addNearbyLocked and removeNearbyLocked keep the list of clients nearer
// than global; a near client that leaves hands the queued messages on.
// c.mu must be held.
func (c *Channel) addNearbyLocked(cl *client) {
	if cl.locality != localityGlobal {
		c.nearby = append(c.nearby, cl)
	}
}

func (c *Channel) removeNearbyLocked(cl *client) {
	if i := slices.Index(c.nearby, cl); i >= 0 {
		c.nearby = slices.Delete(c.nearby, i, i+1)
		c.handOnLocked()
	}
}
