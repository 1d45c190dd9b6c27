package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"wren/protocol"
)

// The broker announces itself to every lookup peer: one goroutine and one
// connection per lookup address. On every (re)connect it sends the magic,
// IDENTIFY, then REGISTER for every topic and channel it has; it sends PING
// every 15 s, REGISTER on each create and UNREGISTER on each delete. Any
// error closes the connection; the peer reconnects with backoff and
// registers everything again, so a registration lost while disconnected is
// never missed. Peers may start in any order: an unreachable lookup is
// retried, never fatal.

const (
	lookupPingInterval = 15 * time.Second
	lookupIOTimeout    = time.Second
	lookupMinBackoff   = 100 * time.Millisecond
	lookupMaxBackoff   = 5 * time.Second
	lookupMaxResponse  = 1 << 20
)

// lookupEvent is one registration change to send to every peer.
type lookupEvent struct {
	register bool
	topic    string
	channel  string
}

// lookupPeerInfo is a lookup's reply to IDENTIFY.
type lookupPeerInfo struct {
	TCPPort          int    `json:"tcp_port"`
	HTTPPort         int    `json:"http_port"`
	Version          string `json:"version"`
	BroadcastAddress string `json:"broadcast_address"`
}

// lookupPeer keeps one lookup connection.
type lookupPeer struct {
	addr   string
	b      *Broker
	logger *slog.Logger
	events chan lookupEvent
	stop   chan struct{}
	done   chan struct{}

	mu   sync.Mutex
	info *lookupPeerInfo // set while connected
}

// lookupManager owns the set of peers and follows PUT /config changes.
type lookupManager struct {
	b      *Broker
	mu     sync.Mutex
	peers  map[string]*lookupPeer
	stop   chan struct{}
	done   chan struct{}
	client *http.Client
}

func newLookupManager(b *Broker) *lookupManager {
	return &lookupManager{
		b:     b,
		peers: make(map[string]*lookupPeer),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		client: &http.Client{
			Transport: &http.Transport{
				DialContext:           (&net.Dialer{Timeout: b.opts.HTTPClientConnectTimeout}).DialContext,
				ResponseHeaderTimeout: b.opts.HTTPClientRequestTimeout,
			},
			Timeout: b.opts.HTTPClientRequestTimeout,
		},
	}
}

// run keeps one peer per configured address until stopped.
func (m *lookupManager) run() {
	defer close(m.done)
	for {
		addrs, changed := m.b.lookupdTCPAddrs()
		m.setPeers(m.b.lookupTargets(addrs))
		select {
		case <-changed:
		case <-m.stop:
			m.setPeers(nil)
			return
		}
	}
}

func (m *lookupManager) setPeers(addrs []string) {
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		want[a] = true
	}
	m.mu.Lock()
	var stopping []*lookupPeer
	for addr, p := range m.peers {
		if !want[addr] {
			stopping = append(stopping, p)
			delete(m.peers, addr)
		}
	}
	for addr := range want {
		if _, ok := m.peers[addr]; !ok {
			p := &lookupPeer{
				addr:   addr,
				b:      m.b,
				logger: m.b.logger.With("lookupd", addr),
				events: make(chan lookupEvent, 1024),
				stop:   make(chan struct{}),
				done:   make(chan struct{}),
			}
			m.peers[addr] = p
			go p.run()
		}
	}
	m.mu.Unlock()
	for _, p := range stopping {
		close(p.stop)
		<-p.done
	}
}

// notify queues a registration change for every peer. A peer whose queue
// is full drops its connection instead, so its next connect re-registers
// everything.
func (m *lookupManager) notify(ev lookupEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.peers {
		select {
		case p.events <- ev:
		default:
			p.logger.Warn("lookup event queue full; will re-register on reconnect")
		}
	}
}

// httpAddrs are the HTTP addresses of the lookups connected now.
func (m *lookupManager) httpAddrs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, p := range m.peers {
		p.mu.Lock()
		info := p.info
		p.mu.Unlock()
		if info == nil {
			continue
		}
		host, _, err := net.SplitHostPort(p.addr)
		if err != nil {
			continue
		}
		out = append(out, net.JoinHostPort(host, strconv.Itoa(info.HTTPPort)))
	}
	return out
}

// channelsFor asks the connected lookups which channels the topic has in
// the cluster, so a new topic gets them before its first message is
// delivered. Errors are logged: a lookup that does not answer in time
// just contributes nothing.
func (m *lookupManager) channelsFor(topic string) []string {
	addrs := m.httpAddrs()
	if len(addrs) == 0 {
		return nil
	}
	type result struct{ channels []string }
	results := make(chan result, len(addrs))
	for _, addr := range addrs {
		go func(addr string) {
			chans, err := m.fetchChannels(addr, topic)
			if err != nil {
				m.b.logger.Debug("asking lookup for channels", "lookupd_http", addr, "topic", topic, "err", err)
			}
			results <- result{chans}
		}(addr)
	}
	seen := map[string]bool{}
	var out []string
	for range addrs {
		for _, ch := range (<-results).channels {
			if !seen[ch] && protocol.IsValidChannelName(ch) && !protocol.IsEphemeral(ch) {
				seen[ch] = true
				out = append(out, ch)
			}
		}
	}
	return out
}

func (m *lookupManager) fetchChannels(addr, topic string) ([]string, error) {
	u := "http://" + addr + "/channels?topic=" + url.QueryEscape(topic)
	ctx, cancel := context.WithTimeout(context.Background(), m.b.opts.HTTPClientRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/vnd.nsq; version=1.0")
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var body struct {
		Channels []string `json:"channels"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, lookupMaxResponse)).Decode(&body); err != nil {
		return nil, err
	}
	return body.Channels, nil
}

func (m *lookupManager) shutdown() {
	close(m.stop)
	<-m.done
}

// run connects, registers, then serves events and pings until stopped,
// reconnecting with backoff after any error.
func (p *lookupPeer) run() {
	defer close(p.done)
	backoff := lookupMinBackoff
	for {
		err := p.session()
		select {
		case <-p.stop:
			return
		default:
		}
		p.logger.Warn("lookup connection failed; retrying", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-p.stop:
			return
		}
		if backoff *= 2; backoff > lookupMaxBackoff {
			backoff = lookupMaxBackoff
		}
		if err == nil {
			backoff = lookupMinBackoff
		}
	}
}

// session is one connection's life.
func (p *lookupPeer) session() error {
	conn, err := net.DialTimeout("tcp", p.addr, lookupIOTimeout)
	if err != nil {
		return err
	}
	if conn.LocalAddr().String() == conn.RemoteAddr().String() {
		// TCP simultaneous open: dialling a local port nobody listens on
		// can connect the socket to itself, and would hold the port the
		// lookup is about to listen on.
		conn.Close()
		return fmt.Errorf("connected to itself: nothing listens on %s yet", p.addr)
	}
	defer func() {
		p.mu.Lock()
		p.info = nil
		p.mu.Unlock()
		conn.Close()
	}()
	r := bufio.NewReader(conn)
	send := func(cmd []byte) ([]byte, error) {
		_ = conn.SetDeadline(time.Now().Add(lookupIOTimeout))
		if _, err := conn.Write(cmd); err != nil {
			return nil, err
		}
		return readLookupResponse(r)
	}
	if _, err := conn.Write([]byte(protocol.MagicV1)); err != nil {
		return err
	}
	resp, err := send(protocol.AppendCommand(nil, "IDENTIFY", p.b.identifyForLookup()))
	if err != nil {
		return fmt.Errorf("IDENTIFY: %w", err)
	}
	var info lookupPeerInfo
	if err := json.Unmarshal(resp, &info); err != nil {
		return fmt.Errorf("IDENTIFY reply %q: %w", resp, err)
	}
	// Drain events queued while disconnected: the full registration below
	// covers them.
	for len(p.events) > 0 {
		<-p.events
	}
	for _, cmd := range p.b.registrations() {
		if resp, err := send(cmd); err != nil {
			return err
		} else if string(resp) != "OK" {
			p.logger.Warn("REGISTER refused", "reply", string(resp))
		}
	}
	p.mu.Lock()
	p.info = &info
	p.mu.Unlock()
	p.logger.Info("registered with lookup", "lookup_http_port", info.HTTPPort)

	ping := time.NewTicker(lookupPingInterval)
	defer ping.Stop()
	for {
		var cmd []byte
		select {
		case ev := <-p.events:
			name := "UNREGISTER"
			if ev.register {
				name = "REGISTER"
			}
			params := []string{ev.topic}
			if ev.channel != "" {
				params = append(params, ev.channel)
			}
			cmd = protocol.AppendCommand(nil, name, nil, params...)
		case <-ping.C:
			cmd = []byte("PING\n")
		case <-p.stop:
			return nil
		}
		resp, err := send(cmd)
		if err != nil {
			return err
		}
		if string(resp) != "OK" {
			p.logger.Warn("lookup refused command", "reply", string(resp))
		}
	}
}

// readLookupResponse reads one V1 reply, [int32 size][data], bounded.
func readLookupResponse(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(hdr[:]))
	if size < 0 || size > lookupMaxResponse {
		return nil, fmt.Errorf("lookup reply size %d out of range", size)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	return data, nil
}

// identifyForLookup is the IDENTIFY body the broker sends to lookups.
func (b *Broker) identifyForLookup() []byte {
	hostname, _ := os.Hostname()
	body, _ := json.Marshal(struct {
		Version          string `json:"version"`
		TCPPort          int    `json:"tcp_port"`
		HTTPPort         int    `json:"http_port"`
		Hostname         string `json:"hostname"`
		BroadcastAddress string `json:"broadcast_address"`
		TopologyZone     string `json:"topology_zone"`
		TopologyRegion   string `json:"topology_region"`
	}{protocol.NSQVersion, b.broadcastTCPPort(), b.broadcastHTTPPort(), hostname, b.opts.BroadcastAddress,
		b.opts.TopologyZone, b.opts.TopologyRegion})
	return body
}

func (b *Broker) broadcastTCPPort() int {
	if b.opts.BroadcastTCPPort != 0 {
		return b.opts.BroadcastTCPPort
	}
	return portOf(b.TCPAddr())
}

func (b *Broker) broadcastHTTPPort() int {
	if b.opts.BroadcastHTTPPort != 0 {
		return b.opts.BroadcastHTTPPort
	}
	return portOf(b.HTTPAddr())
}

func portOf(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return 0
}

// registrations lists a REGISTER for every topic: one per channel, or the
// topic alone when it has none.
func (b *Broker) registrations() [][]byte {
	var cmds [][]byte
	for _, t := range b.Topics() {
		chans := t.Channels()
		if len(chans) == 0 {
			cmds = append(cmds, protocol.AppendCommand(nil, "REGISTER", nil, t.name))
		}
		for _, ch := range chans {
			cmds = append(cmds, protocol.AppendCommand(nil, "REGISTER", nil, t.name, ch.name))
		}
	}
	return cmds
}

// lookupTargets is the configured lookup addresses plus this node's own
// embedded lookup, each once: an address that names the embedded lookup
// (by a loopback, unspecified or local interface IP and its port) is the
// same peer.
func (b *Broker) lookupTargets(addrs []string) []string {
	var out []string
	seen := map[string]bool{}
	own := b.opts.LocalLookupTCPAddress
	if own != "" {
		out = append(out, own)
		seen[own] = true
	}
	for _, a := range addrs {
		if seen[a] || (own != "" && sameLocalEndpoint(a, own)) {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

// sameLocalEndpoint reports whether a and own reach the same listener on
// this machine: same port, and a's host is own's host, or a loopback,
// unspecified or local interface address when own listens on all of them.
func sameLocalEndpoint(a, own string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	oh, op, err2 := net.SplitHostPort(own)
	if err1 != nil || err2 != nil || ap != op {
		return false
	}
	if ah == oh {
		return true
	}
	ownIP := net.ParseIP(oh)
	if oh != "" && ownIP != nil && !ownIP.IsUnspecified() && !ownIP.IsLoopback() {
		return false
	}
	if ah == "localhost" {
		return true
	}
	ip := net.ParseIP(ah)
	if ip == nil {
		ips, err := net.LookupIP(ah)
		if err != nil || len(ips) == 0 {
			return false
		}
		ip = ips[0]
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return ownIP == nil || ownIP.IsUnspecified() || ownIP.IsLoopback()
	}
	if ownIP != nil && !ownIP.IsUnspecified() {
		return false
	}
	ifaces, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range ifaces {
		if n, ok := ia.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
