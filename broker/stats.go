package broker

// GET /stats: a snapshot of topics, channels and clients, as JSON in
// nsqd v1.3.0's shape (nsqadmin, nsq_stat and exporters decode it) or as
// nsqd's text report. Field order, null-versus-[] and number types follow
// nsqd, because some readers compare the bytes.

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"wren/protocol"
)

// statsSnapshot is what /stats reports besides the broker-wide header.
type statsSnapshot struct {
	// Topics is nil (JSON null) when a topic filter names no topic, as in
	// nsqd; otherwise a possibly empty list.
	Topics []topicStats
	// Producers is nil (JSON null) when there are none or clients were not
	// asked for, as in nsqd.
	Producers []clientStats
}

type topicStats struct {
	TopicName            string         `json:"topic_name"`
	Channels             []channelStats `json:"channels"`
	Depth                int64          `json:"depth"`
	BackendDepth         int64          `json:"backend_depth"`
	MessageCount         uint64         `json:"message_count"`
	MessageBytes         uint64         `json:"message_bytes"`
	Paused               bool           `json:"paused"`
	E2eProcessingLatency latencyStats   `json:"e2e_processing_latency"`
	diskLossStats
}

type channelStats struct {
	ChannelName   string `json:"channel_name"`
	Depth         int64  `json:"depth"`
	BackendDepth  int64  `json:"backend_depth"`
	InFlightCount int    `json:"in_flight_count"`
	DeferredCount int    `json:"deferred_count"`
	MessageCount  uint64 `json:"message_count"`

	// In-memory deliveries by the receiving client's locality (topology.go).
	ZoneLocalMsgCount   uint64 `json:"zone_local_msg_count,omitempty"`
	RegionLocalMsgCount uint64 `json:"region_local_msg_count,omitempty"`
	GlobalMsgCount      uint64 `json:"global_msg_count,omitempty"`

	RequeueCount uint64 `json:"requeue_count"`
	TimeoutCount uint64 `json:"timeout_count"`
	ClientCount  int    `json:"client_count"`
	// Clients is nil (JSON null) when clients were not asked for.
	Clients              []clientStats `json:"clients"`
	Paused               bool          `json:"paused"`
	E2eProcessingLatency latencyStats  `json:"e2e_processing_latency"`
	diskLossStats
}

// latencyStats is the end-to-end processing latency of a channel, or of a
// topic's channels merged. With no percentiles configured nsqd reports
// {"count":0,"percentiles":null}.
type latencyStats struct {
	Count       int                 `json:"count"`
	Percentiles []latencyPercentile `json:"percentiles"`
}

// latencyPercentile matches nsqd's {"quantile":q,"value":ns} map entries
// (maps marshal with sorted keys, so the order is the same).
type latencyPercentile struct {
	Quantile float64 `json:"quantile"`
	Value    float64 `json:"value"`
}

// String is nsqd's rendering in the text report: each value in human units.
func (l latencyStats) String() string {
	parts := make([]string, 0, len(l.Percentiles))
	for _, p := range l.Percentiles {
		parts = append(parts, humanNanoseconds(p.Value))
	}
	return strings.Join(parts, ", ")
}

func humanNanoseconds(v float64) string {
	unit := "ns"
	switch {
	case v > 1e9:
		v, unit = v/1e9, "s"
	case v > 1e6:
		v, unit = v/1e6, "ms"
	case v > 1e3:
		v, unit = v/1e3, "us"
	}
	return fmt.Sprintf("%0.1f%s", v, unit)
}

type pubCount struct {
	Topic string `json:"topic"`
	Count uint64 `json:"count"`
}

type clientStats struct {
	ClientID        string `json:"client_id"`
	Hostname        string `json:"hostname"`
	Version         string `json:"version"`
	RemoteAddress   string `json:"remote_address"`
	State           int32  `json:"state"`
	ReadyCount      int64  `json:"ready_count"`
	InFlightCount   int64  `json:"in_flight_count"`
	MessageCount    uint64 `json:"message_count"`
	FinishCount     uint64 `json:"finish_count"`
	RequeueCount    uint64 `json:"requeue_count"`
	ConnectTime     int64  `json:"connect_ts"`
	SampleRate      int32  `json:"sample_rate"`
	Deflate         bool   `json:"deflate"`
	Snappy          bool   `json:"snappy"`
	UserAgent       string `json:"user_agent"`
	Authed          bool   `json:"authed,omitempty"`
	AuthIdentity    string `json:"auth_identity,omitempty"`
	AuthIdentityURL string `json:"auth_identity_url,omitempty"`
	TopologyZone    string `json:"topology_zone"`
	TopologyRegion  string `json:"topology_region"`
	// PubCounts lists every topic the client published to (nsqd v1.3.0
	// lists only one of them, a bug).
	PubCounts []pubCount `json:"pub_counts,omitempty"`

	TLS                           bool   `json:"tls"`
	CipherSuite                   string `json:"tls_cipher_suite"`
	TLSVersion                    string `json:"tls_version"`
	TLSNegotiatedProtocol         string `json:"tls_negotiated_protocol"`
	TLSNegotiatedProtocolIsMutual bool   `json:"tls_negotiated_protocol_is_mutual"`
}

// statsResponse is /stats?format=json.
type statsResponse struct {
	Version   string        `json:"version"`
	Health    string        `json:"health"`
	StartTime int64         `json:"start_time"`
	Topics    []topicStats  `json:"topics"`
	Memory    *memoryStats  `json:"memory,omitempty"`
	Producers []clientStats `json:"producers"`
}

// stats is GET /stats?format=text|json&topic=&channel=&include_clients=&include_mem=.
func (s *httpAPI) stats(r *http.Request, _ httprouter.Params) (any, error) {
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	format, _ := first(q, "format")
	topicName, _ := first(q, "topic")
	channelName, _ := first(q, "channel")
	includeClients := boolParamDefault(q, "include_clients", true)
	includeMem := boolParamDefault(q, "include_mem", true)

	snap := s.b.statsSnapshot(topicName, channelName, includeClients)
	health := s.b.Health()
	var mem *memoryStats
	if includeMem {
		m := readMemoryStats()
		mem = &m
	}
	if format != "json" {
		return appendStatsText(nil, snap, mem, health, s.b.startTime, time.Now()), nil
	}
	return statsResponse{
		Version:   protocol.NSQVersion,
		Health:    health,
		StartTime: s.b.startTime.Unix(),
		Topics:    snap.Topics,
		Memory:    mem,
		Producers: snap.Producers,
	}, nil
}

// boolParamDefault reads a flag that is def unless given as true/1/false/0.
func boolParamDefault(q url.Values, key string, def bool) bool {
	v, ok := first(q, key)
	if !ok {
		return def
	}
	b, recognized := boolParam(v)
	if !recognized {
		return def
	}
	return b
}

// statsSnapshot gathers the stats of the named topic (all when empty) and,
// within each, of the named channel (all when empty). A topic without the
// named channel is left out. Topics and channels come sorted by name,
// clients by connection order.
func (b *Broker) statsSnapshot(topicName, channelName string, includeClients bool) statsSnapshot {
	var snap statsSnapshot
	var topics []*Topic
	if topicName == "" {
		topics = b.Topics()
	} else if t := b.ExistingTopic(topicName); t != nil {
		topics = []*Topic{t}
	} else {
		return snap
	}
	snap.Topics = make([]topicStats, 0, len(topics))
	for _, t := range topics {
		var channels []*Channel
		if channelName == "" {
			channels = t.Channels()
		} else if ch := t.ExistingChannel(channelName); ch != nil {
			channels = []*Channel{ch}
		} else {
			continue
		}
		ts := topicStats{
			TopicName:            t.name,
			Channels:             make([]channelStats, 0, len(channels)),
			Depth:                t.Depth(),
			BackendDepth:         t.backend.Depth(),
			MessageCount:         t.messageCount.Load(),
			MessageBytes:         t.messageBytes.Load(),
			Paused:               t.IsPaused(),
			E2eProcessingLatency: b.topicLatency(t),
			diskLossStats:        diskLoss(t.backend),
		}
		for _, ch := range channels {
			ts.Channels = append(ts.Channels, b.channelStats(ch, topicName, includeClients))
		}
		snap.Topics = append(snap.Topics, ts)
	}
	if includeClients {
		for _, c := range b.clientsByID() {
			c.mu.Lock()
			published := len(c.pubCounts) > 0
			c.mu.Unlock()
			if published {
				snap.Producers = append(snap.Producers, c.stats(topicName))
			}
		}
	}
	return snap
}

func (b *Broker) channelStats(ch *Channel, topicFilter string, includeClients bool) channelStats {
	clients := ch.clientList()
	cs := channelStats{
		ChannelName:          ch.name,
		Depth:                ch.Depth(),
		BackendDepth:         ch.backend.Depth(),
		InFlightCount:        int(ch.inFlightCount.Load()),
		DeferredCount:        ch.deferredCount(),
		MessageCount:         ch.messageCount.Load(),
		ZoneLocalMsgCount:    ch.delivered[localityZone].Load(),
		RegionLocalMsgCount:  ch.delivered[localityRegion].Load(),
		GlobalMsgCount:       ch.delivered[localityGlobal].Load(),
		RequeueCount:         ch.requeueCount.Load(),
		TimeoutCount:         ch.timeoutCount.Load(),
		ClientCount:          len(clients),
		Paused:               ch.IsPaused(),
		E2eProcessingLatency: b.channelLatency(ch),
		diskLossStats:        diskLoss(ch.backend),
	}
	if includeClients {
		sortClients(clients)
		cs.Clients = make([]clientStats, 0, len(clients))
		for _, c := range clients {
			cs.Clients = append(cs.Clients, c.stats(topicFilter))
		}
	}
	return cs
}

// clientsByID returns every connected client, oldest first.
func (b *Broker) clientsByID() []*client {
	b.mu.RLock()
	out := make([]*client, 0, len(b.clients))
	for _, c := range b.clients {
		out = append(out, c)
	}
	b.mu.RUnlock()
	sortClients(out)
	return out
}

func sortClients(cs []*client) {
	slices.SortFunc(cs, func(a, b *client) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
}

// stats reports the client. pub_counts is limited to topicFilter when it
// is not empty, as in nsqd.
func (c *client) stats(topicFilter string) clientStats {
	c.mu.Lock()
	var pubs []pubCount
	for topic, n := range c.pubCounts {
		if topicFilter == "" || topic == topicFilter {
			pubs = append(pubs, pubCount{Topic: topic, Count: n})
		}
	}
	c.mu.Unlock()
	slices.SortFunc(pubs, func(a, b pubCount) int { return strings.Compare(a.Topic, b.Topic) })

	// Not writeMu: a write to a client that does not read holds it.
	info := c.info.Load()

	st := clientStats{
		ClientID:      info.clientID,
		Hostname:      info.hostname,
		Version:       "V2",
		RemoteAddress: c.remoteAddr,
		State:         c.state.Load(),
		ReadyCount:    c.rdy.Load(),
		InFlightCount: c.inFlightN.Load(),
		MessageCount:  c.messageCount.Load(),
		FinishCount:   c.finishCount.Load(),
		RequeueCount:  c.requeueCount.Load(),
		ConnectTime:   c.connectTS.Unix(),
		SampleRate:    c.sampleRate.Load(),
		Deflate:       info.deflate,
		Snappy:        info.snappy,
		UserAgent:     info.userAgent,
		PubCounts:     pubs,

		TopologyZone:   info.topologyZone,
		TopologyRegion: info.topologyRegion,
	}
	st.Authed, st.AuthIdentity, st.AuthIdentityURL = c.auth.stats()
	if tlsState := info.tlsState; tlsState != nil {
		st.TLS = true
		st.CipherSuite = tls.CipherSuiteName(tlsState.CipherSuite)
		st.TLSVersion = tlsVersionName(tlsState.Version)
		st.TLSNegotiatedProtocol = tlsState.NegotiatedProtocol
		st.TLSNegotiatedProtocolIsMutual = true // always true since Go 1.16 (field deprecated)
	}
	return st
}

// tlsVersionName spells TLS versions as nsqd does.
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS1.0"
	case tls.VersionTLS11:
		return "TLS1.1"
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	}
	return fmt.Sprintf("Unknown %d", v)
}

// memoryStats is the Go runtime's heap and GC summary, in nsqd's fields.
type memoryStats struct {
	HeapObjects       uint64 `json:"heap_objects"`
	HeapIdleBytes     uint64 `json:"heap_idle_bytes"`
	HeapInUseBytes    uint64 `json:"heap_in_use_bytes"`
	HeapReleasedBytes uint64 `json:"heap_released_bytes"`
	GCPauseUsec100    uint64 `json:"gc_pause_usec_100"`
	GCPauseUsec99     uint64 `json:"gc_pause_usec_99"`
	GCPauseUsec95     uint64 `json:"gc_pause_usec_95"`
	NextGCBytes       uint64 `json:"next_gc_bytes"`
	GCTotalRuns       uint32 `json:"gc_total_runs"`
}

func readMemoryStats() memoryStats {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// PauseNs is a ring of the most recent pauses; only NumGC are real
	// while it has not wrapped.
	n := min(int(ms.NumGC), len(ms.PauseNs))
	pauses := slices.Clone(ms.PauseNs[:n])
	slices.Sort(pauses)
	return memoryStats{
		HeapObjects:       ms.HeapObjects,
		HeapIdleBytes:     ms.HeapIdle,
		HeapInUseBytes:    ms.HeapInuse,
		HeapReleasedBytes: ms.HeapReleased,
		GCPauseUsec100:    percentileOf(pauses, 100) / 1000,
		GCPauseUsec99:     percentileOf(pauses, 99) / 1000,
		GCPauseUsec95:     percentileOf(pauses, 95) / 1000,
		NextGCBytes:       ms.NextGC,
		GCTotalRuns:       ms.NumGC,
	}
}

// percentileOf picks the perc-th percentile of sorted values by nsqd's
// nearest-rank rule: index round(perc/100 × n), capped at the last.
func percentileOf(sorted []uint64, perc float64) uint64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(math.Floor(perc/100*float64(n) + 0.5))
	if i >= n {
		i = n - 1
	}
	return sorted[i]
}

// appendStatsText appends nsqd's plain-text /stats report to dst.
func appendStatsText(dst []byte, snap statsSnapshot, mem *memoryStats, health string, start, now time.Time) []byte {
	w := bytes.NewBuffer(dst)
	fmt.Fprintf(w, "nsqd v%s (built w/%s)\n", protocol.NSQVersion, runtime.Version())
	fmt.Fprintf(w, "start_time %s\n", start.Format(time.RFC3339))
	fmt.Fprintf(w, "uptime %s\n", now.Sub(start))
	fmt.Fprintf(w, "\nHealth: %s\n", health)

	if mem != nil {
		w.WriteString("\nMemory:\n")
		for _, row := range []struct {
			name  string
			value uint64
		}{
			{"heap_objects", mem.HeapObjects},
			{"heap_idle_bytes", mem.HeapIdleBytes},
			{"heap_in_use_bytes", mem.HeapInUseBytes},
			{"heap_released_bytes", mem.HeapReleasedBytes},
			{"gc_pause_usec_100", mem.GCPauseUsec100},
			{"gc_pause_usec_99", mem.GCPauseUsec99},
			{"gc_pause_usec_95", mem.GCPauseUsec95},
			{"next_gc_bytes", mem.NextGCBytes},
			{"gc_total_runs", uint64(mem.GCTotalRuns)},
		} {
			fmt.Fprintf(w, "   %-25s\t%d\n", row.name, row.value)
		}
	}

	if len(snap.Topics) == 0 {
		w.WriteString("\nTopics: None\n")
	} else {
		w.WriteString("\nTopics:")
	}
	for _, t := range snap.Topics {
		prefix := "   "
		if t.Paused {
			prefix = "*P "
		}
		fmt.Fprintf(w, "\n%s[%-15s] depth: %-5d be-depth: %-5d msgs: %-8d e2e%%: %s\n",
			prefix, t.TopicName, t.Depth, t.BackendDepth, t.MessageCount, t.E2eProcessingLatency)
		for _, c := range t.Channels {
			prefix := "      "
			if c.Paused {
				prefix = "   *P "
			}
			fmt.Fprintf(w, "%s[%-25s] depth: %-5d be-depth: %-5d inflt: %-4d def: %-4d re-q: %-5d timeout: %-5d msgs: %-8d e2e%%: %s\n",
				prefix, c.ChannelName, c.Depth, c.BackendDepth, c.InFlightCount, c.DeferredCount,
				c.RequeueCount, c.TimeoutCount, c.MessageCount, c.E2eProcessingLatency)
			for _, cl := range c.Clients {
				fmt.Fprintf(w, "        %s\n", cl.text(now))
			}
		}
	}

	if len(snap.Producers) == 0 {
		w.WriteString("\nProducers: None\n")
	} else {
		w.WriteString("\nProducers:\n")
		for _, cl := range snap.Producers {
			fmt.Fprintf(w, "   %s\n", cl.text(now))
		}
	}
	return w.Bytes()
}

// text is the client's line in the text report: a producer's (any client
// that published) or a consumer's.
func (s clientStats) text(now time.Time) string {
	connected := now.Sub(time.Unix(s.ConnectTime, 0)).Truncate(time.Second)
	_, port, _ := net.SplitHostPort(s.RemoteAddress)
	id := fmt.Sprintf("%s:%s %s", s.Hostname, port, s.UserAgent)
	if len(s.PubCounts) > 0 {
		var total uint64
		topics := make([]string, 0, len(s.PubCounts))
		for _, p := range s.PubCounts {
			total += p.Count
			topics = append(topics, fmt.Sprintf("%s=%d", p.Topic, p.Count))
		}
		return fmt.Sprintf("[%s %-21s] msgs: %-8d topics: %s connected: %s",
			s.Version, id, total, strings.Join(topics, ","), connected)
	}
	return fmt.Sprintf("[%s %-21s] state: %d inflt: %-4d rdy: %-4d fin: %-8d re-q: %-8d msgs: %-8d connected: %s",
		s.Version, id, s.State, s.InFlightCount, s.ReadyCount, s.FinishCount,
		s.RequeueCount, s.MessageCount, connected)
}
