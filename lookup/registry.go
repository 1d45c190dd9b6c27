package lookup

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"wren/protocol"
)

// The registry is nsqlookupd's registration DB: registrations, each keyed
// by (category, key, subkey), map peer ids to producers. A broker that
// IDENTIFYs becomes a producer of ("client", "", ""); REGISTER t c makes
// it a producer of ("channel", t, c) and ("topic", t, ""). Registrations
// made over HTTP have no producers, and a registration whose producers all
// leave stays (it still shows in /topics and /channels) unless its own name
// is ephemeral.
//
// registry.mu guards every registration and producer. It is a leaf lock:
// no method calls out while holding it.

// Registration categories, as nsqlookupd names them in /debug.
const (
	categoryClient  = "client"
	categoryTopic   = "topic"
	categoryChannel = "channel"
)

// wildcard matches any key or subkey. The HTTP API passes topic names to
// queries unchecked, as nsqlookupd does, so /lookup?topic=* or
// /channels?topic=* answer for every topic and /topic/delete?topic=*
// deletes them all.
const wildcard = "*"

type registration struct {
	category string
	key      string
	subkey   string
}

func (r registration) matches(category, key, subkey string) bool {
	return r.category == category &&
		(key == wildcard || r.key == key) &&
		(subkey == wildcard || r.subkey == subkey)
}

// isEphemeral reports whether the registration's own name, the channel of
// a channel registration or the topic of a topic registration, is
// ephemeral: such a registration goes with its last producer.
func (r registration) isEphemeral() bool {
	switch r.category {
	case categoryChannel:
		return protocol.IsEphemeral(r.subkey)
	case categoryTopic:
		return protocol.IsEphemeral(r.key)
	}
	return false
}

// debugKey is the registration as /debug names it.
func (r registration) debugKey() string { return r.category + ":" + r.key + ":" + r.subkey }

// peerInfo is what a broker tells about itself in IDENTIFY, and what
// /lookup and /nodes tell about it, in nsqlookupd's field order.
type peerInfo struct {
	RemoteAddress    string `json:"remote_address"`
	Hostname         string `json:"hostname"`
	BroadcastAddress string `json:"broadcast_address"`
	TCPPort          int    `json:"tcp_port"`
	HTTPPort         int    `json:"http_port"`
	Version          string `json:"version"`
	// The broker's --topology-zone and --topology-region (NSQ master).
	TopologyZone   string `json:"topology_zone"`
	TopologyRegion string `json:"topology_region"`
}

// node is the address /topic/tombstone names a producer by.
func (p *peerInfo) node() string {
	return p.BroadcastAddress + ":" + strconv.Itoa(p.HTTPPort)
}

// peer is one identified connection. Its id is the connection's remote
// address; info does not change after IDENTIFY.
type peer struct {
	id         string
	info       peerInfo
	lastUpdate atomic.Int64 // Unix nanoseconds of the last IDENTIFY or PING
}

// producer is one peer's membership of one registration. A tombstone hides
// it from /lookup for the tombstone lifetime; it is per registration, so
// tombstoning a broker for one topic leaves its other topics alone.
type producer struct {
	peer         *peer
	tombstoned   bool
	tombstonedAt time.Time
}

type registry struct {
	inactiveTimeout   time.Duration
	tombstoneLifetime time.Duration
	now               func() time.Time // time.Now, or a test's clock

	mu            sync.RWMutex
	registrations map[registration]map[string]*producer // by peer id
}

func newRegistry(inactiveTimeout, tombstoneLifetime time.Duration) *registry {
	return &registry{
		inactiveTimeout:   inactiveTimeout,
		tombstoneLifetime: tombstoneLifetime,
		now:               time.Now,
		registrations:     make(map[registration]map[string]*producer),
	}
}

// active reports whether p has been seen within the inactive timeout.
func (r *registry) active(p *peer, now time.Time) bool {
	return now.Sub(time.Unix(0, p.lastUpdate.Load())) <= r.inactiveTimeout
}

// isTombstoned reports whether p was tombstoned less than the tombstone
// lifetime ago. r.mu must be held.
func (r *registry) isTombstoned(p *producer, now time.Time) bool {
	return p.tombstoned && now.Sub(p.tombstonedAt) < r.tombstoneLifetime
}

// touch records that p was just heard from.
func (r *registry) touch(p *peer) { p.lastUpdate.Store(r.now().UnixNano()) }

// addProducer makes p a producer of reg, creating reg if needed, and
// reports whether p is new to it. A producer already there keeps its
// tombstone. r.mu must be held.
func (r *registry) addProducer(reg registration, p *peer) bool {
	producers, ok := r.registrations[reg]
	if !ok {
		producers = make(map[string]*producer)
		r.registrations[reg] = producers
	}
	if _, ok := producers[p.id]; ok {
		return false
	}
	producers[p.id] = &producer{peer: p}
	return true
}

// removeProducer removes peer id from reg and deletes reg if it is then
// empty and ephemeral, whether or not id was among its producers (as
// nsqlookupd's UNREGISTER does). It reports whether id was a producer of
// reg. r.mu must be held.
func (r *registry) removeProducer(reg registration, id string) bool {
	producers, ok := r.registrations[reg]
	if !ok {
		return false
	}
	_, removed := producers[id]
	delete(producers, id)
	if len(producers) == 0 && reg.isEphemeral() {
		delete(r.registrations, reg)
	}
	return removed
}

// matching returns the registrations that match, sorted. r.mu must be held.
func (r *registry) matching(category, key, subkey string) []registration {
	var out []registration
	if key != wildcard && subkey != wildcard {
		reg := registration{category, key, subkey}
		if _, ok := r.registrations[reg]; ok {
			out = append(out, reg)
		}
		return out
	}
	for reg := range r.registrations {
		if reg.matches(category, key, subkey) {
			out = append(out, reg)
		}
	}
	slices.SortFunc(out, func(a, b registration) int {
		return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.subkey, b.subkey))
	})
	return out
}

// identify registers p as a client and marks it seen; false if it already
// was one.
func (r *registry) identify(p *peer) bool {
	r.touch(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addProducer(registration{categoryClient, "", ""}, p)
}

// register makes p a producer of the channel (if not "") and of the topic,
// returning the registrations it was new to.
func (r *registry) register(p *peer, topic, channel string) []registration {
	regs := make([]registration, 0, 2)
	if channel != "" {
		regs = append(regs, registration{categoryChannel, topic, channel})
	}
	regs = append(regs, registration{categoryTopic, topic, ""})
	r.mu.Lock()
	defer r.mu.Unlock()
	added := regs[:0]
	for _, reg := range regs {
		if r.addProducer(reg, p) {
			added = append(added, reg)
		}
	}
	return added
}

// unregister removes peer id from the channel, or when channel is "", from
// the topic and every channel of it, as nsqlookupd's UNREGISTER does. It
// returns the registrations id left.
func (r *registry) unregister(id, topic, channel string) []registration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var regs []registration
	if channel != "" {
		regs = []registration{{categoryChannel, topic, channel}}
	} else {
		regs = append(r.matching(categoryChannel, topic, wildcard), registration{categoryTopic, topic, ""})
	}
	var removed []registration
	for _, reg := range regs {
		if r.removeProducer(reg, id) {
			removed = append(removed, reg)
		}
	}
	return removed
}

// removePeer removes peer id from every registration, when its connection
// closes, and returns the registrations it left.
func (r *registry) removePeer(id string) []registration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var removed []registration
	for reg, producers := range r.registrations {
		if _, ok := producers[id]; ok {
			r.removeProducer(reg, id)
			removed = append(removed, reg)
		}
	}
	return removed
}

// createTopic and createChannel add registrations with no producers, as
// POST /topic/create and /channel/create do; creating a channel creates
// its topic too.
func (r *registry) createTopic(topic string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addRegistration(registration{categoryTopic, topic, ""})
}

func (r *registry) createChannel(topic, channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addRegistration(registration{categoryChannel, topic, channel})
	r.addRegistration(registration{categoryTopic, topic, ""})
}

// addRegistration adds reg with no producers unless it exists. r.mu must
// be held.
func (r *registry) addRegistration(reg registration) {
	if _, ok := r.registrations[reg]; !ok {
		r.registrations[reg] = make(map[string]*producer)
	}
}

// deleteTopic removes the topic's registration and its channels', with
// their producers, and returns them.
func (r *registry) deleteTopic(topic string) []registration {
	r.mu.Lock()
	defer r.mu.Unlock()
	regs := append(r.matching(categoryChannel, topic, wildcard), r.matching(categoryTopic, topic, "")...)
	for _, reg := range regs {
		delete(r.registrations, reg)
	}
	return regs
}

// deleteChannel removes the channel's registration; false if there was
// none.
func (r *registry) deleteChannel(topic, channel string) bool {
	reg := registration{categoryChannel, topic, channel}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.registrations[reg]; !ok {
		return false
	}
	delete(r.registrations, reg)
	return true
}

// tombstone marks the topic's producers whose node ("broadcast:httpport")
// is node as tombstoned from now, and returns how many it marked.
func (r *registry) tombstone(topic, node string) int {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, reg := range r.matching(categoryTopic, topic, "") {
		for _, p := range r.registrations[reg] {
			if p.peer.info.node() == node {
				p.tombstoned, p.tombstonedAt = true, now
				n++
			}
		}
	}
	return n
}

// producers returns the producers of the matching registrations that keep
// accepts, one per peer, sorted. With a wildcard a peer is in the result
// if any of its producers is kept; nsqlookupd keeps or drops the one it
// happens to meet first in map order. r.mu must be held.
func (r *registry) producers(category, key, subkey string, keep func(*producer) bool) []*producer {
	var out []*producer
	seen := make(map[string]bool)
	for _, reg := range r.matching(category, key, subkey) {
		for id, p := range r.registrations[reg] {
			if !seen[id] && keep(p) {
				seen[id] = true
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b *producer) int { return comparePeers(a.peer, b.peer) })
	return out
}

// comparePeers orders peers by their broadcast address and ports, so that
// replies are stable where nsqlookupd's follow map order.
func comparePeers(a, b *peer) int {
	return cmp.Or(
		cmp.Compare(a.info.BroadcastAddress, b.info.BroadcastAddress),
		cmp.Compare(a.info.TCPPort, b.info.TCPPort),
		cmp.Compare(a.info.HTTPPort, b.info.HTTPPort),
		cmp.Compare(a.id, b.id),
	)
}

// lookup answers /lookup: false when the topic has no registration;
// otherwise its channels and its active producers that are not
// tombstoned.
func (r *registry) lookup(topic string) (channels []string, producers []peerInfo, found bool) {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.matching(categoryTopic, topic, "")) == 0 {
		return nil, nil, false
	}
	channels = subkeys(r.matching(categoryChannel, topic, wildcard))
	producers = []peerInfo{}
	visible := func(p *producer) bool { return r.active(p.peer, now) && !r.isTombstoned(p, now) }
	for _, p := range r.producers(categoryTopic, topic, "", visible) {
		producers = append(producers, p.peer.info)
	}
	return channels, producers, true
}

// topics answers /topics: every topic registration, with or without
// producers.
func (r *registry) topics() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return keys(r.matching(categoryTopic, wildcard, ""))
}

// channels answers /channels.
func (r *registry) channels(topic string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return subkeys(r.matching(categoryChannel, topic, wildcard))
}

// nodeInfo is one entry of /nodes: a peer, its topics and, for each, whether
// it is tombstoned for it.
type nodeInfo struct {
	peerInfo
	Tombstones []bool   `json:"tombstones"`
	Topics     []string `json:"topics"`
}

// nodes answers /nodes: every active client, tombstoned or not.
func (r *registry) nodes() []nodeInfo {
	now := r.now()
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []nodeInfo{}
	topics := r.matching(categoryTopic, wildcard, "")
	active := func(p *producer) bool { return r.active(p.peer, now) }
	for _, client := range r.producers(categoryClient, "", "", active) {
		n := nodeInfo{peerInfo: client.peer.info, Tombstones: []bool{}, Topics: []string{}}
		for _, reg := range topics {
			if p, ok := r.registrations[reg][client.peer.id]; ok {
				n.Topics = append(n.Topics, reg.key)
				n.Tombstones = append(n.Tombstones, r.isTombstoned(p, now))
			}
		}
		out = append(out, n)
	}
	return out
}

// debugProducer is one producer in /debug, fields in nsqlookupd's
// (alphabetical) order.
type debugProducer struct {
	BroadcastAddress string `json:"broadcast_address"`
	Hostname         string `json:"hostname"`
	HTTPPort         int    `json:"http_port"`
	ID               string `json:"id"`
	LastUpdate       int64  `json:"last_update"`
	TCPPort          int    `json:"tcp_port"`
	Tombstoned       bool   `json:"tombstoned"`
	TombstonedAt     int64  `json:"tombstoned_at"`
	TopologyRegion   string `json:"topology_region"`
	TopologyZone     string `json:"topology_zone"`
	Version          string `json:"version"`
}

// debug answers /debug: every producer of every registration, by
// "category:key:subkey". Registrations without producers are left out, as
// in nsqlookupd.
func (r *registry) debug() map[string][]debugProducer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string][]debugProducer)
	for reg, producers := range r.registrations {
		list := make([]*producer, 0, len(producers))
		for _, p := range producers {
			list = append(list, p)
		}
		slices.SortFunc(list, func(a, b *producer) int { return comparePeers(a.peer, b.peer) })
		for _, p := range list {
			info := &p.peer.info
			out[reg.debugKey()] = append(out[reg.debugKey()], debugProducer{
				BroadcastAddress: info.BroadcastAddress,
				Hostname:         info.Hostname,
				HTTPPort:         info.HTTPPort,
				ID:               p.peer.id,
				LastUpdate:       p.peer.lastUpdate.Load(),
				TCPPort:          info.TCPPort,
				Tombstoned:       p.tombstoned,
				// The zero time's UnixNano, as nsqlookupd reports for
				// a producer never tombstoned.
				TombstonedAt:   p.tombstonedAt.UnixNano(),
				TopologyRegion: info.TopologyRegion,
				TopologyZone:   info.TopologyZone,
				Version:        info.Version,
			})
		}
	}
	return out
}

func keys(regs []registration) []string {
	out := make([]string, len(regs))
	for i, reg := range regs {
		out[i] = reg.key
	}
	return out
}

func subkeys(regs []registration) []string {
	out := make([]string, len(regs))
	for i, reg := range regs {
		out[i] = reg.subkey
	}
	return out
}
