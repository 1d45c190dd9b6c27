package broker

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"wren/diskqueue"
	"wren/internal/listener"
	"wren/protocol"
)

// ErrBrokerClosed is returned by operations on a broker that is shutting
// down.
var ErrBrokerClosed = errors.New("broker closed")

// Broker is one wren broker: its topics and their channels, its clients,
// and its TCP, HTTP and HTTPS listeners.
//
// Lock order: Broker.mu, then Topic.mu, then Channel.mu, then client.mu;
// client.writeMu is never held while taking any of the others, and is
// held across socket writes, so /stats and other readers of a client
// never take it (slowclient.go). A disk
// write (diskqueue.Backlog.Put) may run under Topic.mu, never under
// Channel.mu, and the backlog's own lock is innermost.
type Broker struct {
	opts      *Options
	logger    *slog.Logger
	v2        *v2Config
	queues    *queueConfig
	tlsConfig *tls.Config
	startTime time.Time

	mu      sync.RWMutex
	topics  map[string]*Topic
	clients map[int64]*client
	exiting bool

	nextClientID atomic.Int64
	health       healthState // failing disk queues; see health.go

	// runtimeMu guards the options PUT /config changes while the broker
	// runs (opts.LookupdTCPAddrs, opts.LogLevel) and lookupdChanged, a
	// channel closed at the next change of the lookup addresses.
	runtimeMu      sync.RWMutex
	lookupdChanged chan struct{}

	metaMu   sync.Mutex // serialises writes of nsqd.dat
	dataLock *os.File

	lookups *lookupManager // nil until Start

	stopStatsd func() // stops the statsd pusher; nil until Start

	tcpListener   net.Listener
	httpListener  net.Listener
	httpsListener net.Listener
	httpServers   []*http.Server
	conns         sync.WaitGroup // connection handlers
	serving       sync.WaitGroup // accept loops and HTTP servers
	shutdownOnce  sync.Once
}

// New checks opts and returns a broker that has opened nothing yet. The
// broker keeps opts; do not change them afterwards.
func New(opts *Options) (*Broker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.TLSClientAuthPolicy != "" && opts.TLSRequired == TLSNotRequired {
		// As in nsqd: a client certificate policy means TLS everywhere.
		opts.TLSRequired = TLSRequiredEverywhere
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	b := &Broker{
		opts:    opts,
		logger:  logger,
		topics:  make(map[string]*Topic),
		clients: make(map[int64]*client),
	}
	b.v2 = newV2Config(opts, protocol.IdentifyLimits{
		DefaultHeartbeatInterval:   opts.ClientTimeout / 2,
		MaxHeartbeatInterval:       opts.MaxHeartbeatInterval,
		DefaultOutputBufferSize:    defaultBufferSize,
		MaxOutputBufferSize:        int(opts.MaxOutputBufferSize),
		DefaultOutputBufferTimeout: opts.OutputBufferTimeout,
		MinOutputBufferTimeout:     opts.MinOutputBufferTimeout,
		MaxOutputBufferTimeout:     opts.MaxOutputBufferTimeout,
		DefaultMsgTimeout:          opts.MsgTimeout,
		MaxMsgTimeout:              opts.MaxMsgTimeout,
		DeflateEnabled:             opts.DeflateEnabled,
		MaxDeflateLevel:            opts.MaxDeflateLevel,
		SnappyEnabled:              opts.SnappyEnabled,
		TLSEnabled:                 opts.TLSCert != "",
	})
	b.queues = &queueConfig{
		dataPath:            opts.DataPath,
		nodeID:              opts.NodeID,
		memQueueSize:        memQueueSize(opts),
		durable:             opts.Durable,
		maxChannelConsumers: opts.MaxChannelConsumers,
		topologyAware:       opts.HasExperiment(ExperimentTopologyAwareConsumption),
		logger:              logger,
		openBackend:         b.openBackend,
		latency:             newLatencyConfig(opts),
	}
	return b, nil
}

// maxWriteBehind bounds the messages a disk queue may have acknowledged
// and not yet written: enough for a publisher to fill the next record
// while the last is written, few enough that the writing never outlasts
// the publishing by much.
const maxWriteBehind = 16384

func (b *Broker) openBackend(name string, ephemeral bool) *diskqueue.Backlog {
	if ephemeral {
		return diskqueue.NewDiscardBacklog()
	}
	return diskqueue.OpenBacklog(diskqueue.Options{
		Name:            diskQueueName(name),
		DataPath:        b.opts.DataPath,
		MaxBytesPerFile: b.opts.MaxBytesPerFile,
		MinRecordSize:   protocol.MessageHeaderSize,
		MaxRecordSize:   diskqueue.MaxRecordSize(b.opts.MaxMsgSize),
		SyncEvery:       b.opts.SyncEvery,
		SyncTimeout:     b.opts.SyncTimeout,
		Logger:          b.logger,
		// A few records' worth of messages may be acknowledged ahead of
		// their write, so publishers and the disk work in parallel; never
		// more than a memory queue holds, so --mem-queue-size=0 writes
		// before every acknowledgement.
		WriteBehind:  min(b.opts.MemQueueSize, maxWriteBehind),
		OnWriteState: func(err error) { b.health.set(name, err) },
		Durable:      b.opts.Durable,
	})
}

// memQueueSize is the memory queue of each topic and channel: none with
// --durable, where every message is written and fsynced before its OK.
func memQueueSize(opts *Options) int64 {
	if opts.Durable {
		return 0
	}
	return opts.MemQueueSize
}

// setHealth marks the broker itself unhealthy with err, or healthy again
// with nil; disk queues report their own state (health.go).
func (b *Broker) setHealth(err error) { b.health.set("", err) }

// Health is "OK", or "NOK - <error>" while a disk queue's writes fail.
func (b *Broker) Health() string { return b.health.String() }

// Start locks the data path, restores topics and channels from nsqd.dat,
// and starts the listeners. It returns once every listener is accepting.
func (b *Broker) Start() error {
	b.startTime = time.Now()
	lock, err := lockDataPath(b.opts.DataPath)
	if err != nil {
		return err
	}
	b.dataLock = lock
	if err := b.start(); err != nil {
		b.closeListeners()
		unlockDataPath(b.dataLock)
		return err
	}
	b.stopStatsd = b.startStatsd()
	return nil
}

func (b *Broker) start() error {
	if b.opts.TLSCert != "" {
		cfg, err := buildTLSConfig(b.opts)
		if err != nil {
			return err
		}
		b.tlsConfig = cfg
		b.v2.tlsConfig = cfg
	}
	if err := b.startAuthClient(); err != nil {
		return err
	}
	if err := b.loadMetadata(); err != nil {
		return err
	}
	var err error
	if b.tcpListener, err = listen(b.opts.TCPAddress); err != nil {
		return fmt.Errorf("listen on --tcp-address=%s: %w", b.opts.TCPAddress, err)
	}
	if b.opts.HTTPAddress != "" {
		if b.httpListener, err = listen(b.opts.HTTPAddress); err != nil {
			return fmt.Errorf("listen on --http-address=%s: %w", b.opts.HTTPAddress, err)
		}
	}
	if b.tlsConfig != nil && b.opts.HTTPSAddress != "" {
		if b.httpsListener, err = listen(b.opts.HTTPSAddress); err != nil {
			return fmt.Errorf("listen on --https-address=%s: %w", b.opts.HTTPSAddress, err)
		}
	}
	// Lookups start once the listeners have their ports (IDENTIFY sends
	// them) and before anything is served, so every topic and channel
	// created from here on is announced.
	b.lookups = newLookupManager(b)
	b.queues.lookupNotify = b.lookups.notify
	go b.lookups.run()

	b.serving.Add(1)
	go func() {
		defer b.serving.Done()
		listener.Serve(b.tcpListener, b.logger, &b.conns, b.handleTCP)
	}()
	if b.httpListener != nil {
		b.serveHTTP(b.httpListener, false)
	}
	if b.httpsListener != nil {
		b.serveHTTP(tls.NewListener(b.httpsListener, b.tlsConfig), true)
	}
	b.logger.Info("broker listening", "tcp", b.tcpListener.Addr().String(), "http", addrString(b.httpListener), "https", addrString(b.httpsListener))
	return b.persistMetadata()
}

func (b *Broker) serveHTTP(l net.Listener, isHTTPS bool) {
	srv := &http.Server{
		Handler:           newHTTPHandler(b, isHTTPS),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.logger.Handler(), slog.LevelDebug),
	}
	b.httpServers = append(b.httpServers, srv)
	b.serving.Add(1)
	go func() {
		defer b.serving.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			b.logger.Error("http server stopped", "err", err)
		}
	}()
}

func addrString(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// listen opens a TCP listener, or a unix socket when addr is a path.
func listen(addr string) (net.Listener, error) {
	if strings.Contains(addr, "/") {
		_ = os.Remove(addr)
		return net.Listen("unix", addr)
	}
	return net.Listen("tcp", addr)
}

// TCPAddr, HTTPAddr and HTTPSAddr return the listeners' addresses (nil
// when not listening), so callers may listen on port 0.
func (b *Broker) TCPAddr() net.Addr   { return listenerAddr(b.tcpListener) }
func (b *Broker) HTTPAddr() net.Addr  { return listenerAddr(b.httpListener) }
func (b *Broker) HTTPSAddr() net.Addr { return listenerAddr(b.httpsListener) }

func listenerAddr(l net.Listener) net.Addr {
	if l == nil {
		return nil
	}
	return l.Addr()
}

// handleTCP reads the protocol magic and runs the protocol it names.
func (b *Broker) handleTCP(conn net.Conn) {
	if b.readMagic(conn) {
		b.serveV2(conn)
	}
}

// readMagic reads the protocol magic; it answers and closes a connection
// that does not send V2's.
func (b *Broker) readMagic(conn net.Conn) bool {
	_ = conn.SetReadDeadline(time.Now().Add(b.opts.ClientTimeout))
	magic := make([]byte, 4)
	if _, err := io.ReadFull(conn, magic); err != nil {
		b.logger.Debug("failed to read protocol magic", "client", conn.RemoteAddr().String(), "err", err)
		conn.Close()
		return false
	}
	_ = conn.SetReadDeadline(time.Time{})
	if string(magic) != protocol.MagicV2 {
		b.logger.Error("bad protocol magic", "client", conn.RemoteAddr().String(), "magic", string(magic))
		_, _ = conn.Write(protocol.AppendFrame(nil, protocol.FrameTypeError, []byte(protocol.CodeBadProtocol)))
		conn.Close()
		return false
	}
	return true
}

func (b *Broker) addClient(c *client) {
	b.mu.Lock()
	b.clients[c.id] = c
	exiting := b.exiting
	b.mu.Unlock()
	if exiting {
		c.close(closeBrokerShutdown, nil)
	}
}

func (b *Broker) removeClient(c *client) {
	b.mu.Lock()
	delete(b.clients, c.id)
	b.mu.Unlock()
}

// Topic returns the named topic, creating it if needed.
func (b *Broker) Topic(name string) (*Topic, error) {
	b.mu.RLock()
	t, ok := b.topics[name]
	exiting := b.exiting
	b.mu.RUnlock()
	// An ephemeral topic that lost its last channel is on its way out:
	// a newcomer gets a fresh topic instead.
	if ok && !(t.ephemeral && t.isExiting()) {
		return t, nil
	}
	if exiting {
		return nil, ErrBrokerClosed
	}
	b.mu.Lock()
	if b.exiting {
		b.mu.Unlock()
		return nil, ErrBrokerClosed
	}
	if t, ok = b.topics[name]; ok {
		if !(t.ephemeral && t.isExiting()) {
			b.mu.Unlock()
			return t, nil
		}
		delete(b.topics, name) // removeEphemeralTopic finishes it
	}
	t = newTopic(name, b.queues, b.metadataChanged, b.removeEphemeralTopic)
	lookups := b.lookups
	if lookups != nil {
		t.mu.Lock()
		t.holdForInit = true
		t.mu.Unlock()
	}
	b.topics[name] = t
	b.mu.Unlock()
	b.logger.Info("new topic", "topic", name)
	if !t.ephemeral {
		b.metadataChanged()
	}
	if lookups != nil {
		lookups.notify(lookupEvent{register: true, topic: name})
		// Channels the cluster knows for this topic exist before its
		// first message is delivered, so each gets a copy.
		for _, chName := range lookups.channelsFor(name) {
			if _, err := t.Channel(chName); err != nil {
				b.logger.Warn("pre-creating channel", "topic", name, "channel", chName, "err", err)
			}
		}
		t.releaseInit()
	}
	return t, nil
}

// ExistingTopic returns the named topic, or nil.
func (b *Broker) ExistingTopic(name string) *Topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topics[name]
}

// Topics returns every topic, sorted by name.
func (b *Broker) Topics() []*Topic {
	b.mu.RLock()
	out := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t)
	}
	b.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// DeleteTopic removes a topic with its channels and data.
func (b *Broker) DeleteTopic(name string) bool {
	b.mu.Lock()
	t, ok := b.topics[name]
	if ok {
		delete(b.topics, name)
	}
	b.mu.Unlock()
	if !ok {
		return false
	}
	b.finishTopicDeletion(t)
	return true
}

func (b *Broker) finishTopicDeletion(t *Topic) {
	name := t.name
	t.delete()
	b.logger.Info("deleted topic", "topic", name)
	if b.lookups != nil {
		b.lookups.notify(lookupEvent{topic: name})
	}
	if !t.ephemeral {
		b.metadataChanged()
	}
}

// removeEphemeralTopic deletes an ephemeral topic whose last channel went.
// The topic already refuses new channels (see Topic.deleteChannel).
func (b *Broker) removeEphemeralTopic(t *Topic) {
	b.mu.Lock()
	if b.topics[t.name] == t {
		delete(b.topics, t.name)
	}
	b.mu.Unlock()
	b.finishTopicDeletion(t)
}

// metadataChanged persists nsqd.dat after a create, delete or pause.
func (b *Broker) metadataChanged() {
	b.mu.RLock()
	exiting := b.exiting
	b.mu.RUnlock()
	if exiting {
		return
	}
	if err := b.persistMetadata(); err != nil {
		b.logger.Error("writing metadata", "err", err)
	}
}

func (b *Broker) persistMetadata() error {
	b.metaMu.Lock()
	defer b.metaMu.Unlock()
	md := metadataFile{Topics: []topicMetadata{}, Version: protocol.NSQVersion}
	for _, t := range b.Topics() {
		if t.ephemeral {
			continue
		}
		tm := topicMetadata{Name: t.name, Paused: t.IsPaused(), Channels: []channelMetadata{}}
		for _, ch := range t.Channels() {
			if ch.ephemeral {
				continue
			}
			tm.Channels = append(tm.Channels, channelMetadata{Name: ch.name, Paused: ch.IsPaused()})
		}
		md.Topics = append(md.Topics, tm)
	}
	data, err := json.Marshal(md)
	if err != nil {
		return err
	}
	return writeFileAtomic(b.opts.DataPath+"/"+metadataFileName, data)
}

func (b *Broker) loadMetadata() error {
	md, err := readOrRebuildMetadata(b.opts.DataPath, b.logger)
	if err != nil {
		return err
	}
	for _, tm := range md.Topics {
		if !protocol.IsValidTopicName(tm.Name) || protocol.IsEphemeral(tm.Name) {
			b.logger.Warn("skipping topic from metadata", "topic", tm.Name)
			continue
		}
		t := newTopic(tm.Name, b.queues, b.metadataChanged, b.removeEphemeralTopic)
		b.topics[tm.Name] = t
		// The topic's pump already runs: set it up under its lock.
		t.mu.Lock()
		t.paused = tm.Paused
		for _, cm := range tm.Channels {
			if !protocol.IsValidChannelName(cm.Name) || protocol.IsEphemeral(cm.Name) {
				continue
			}
			ch := newChannel(tm.Name, cm.Name, b.queues, t.channelHooks())
			ch.paused.Store(cm.Paused)
			t.channels[cm.Name] = ch
			t.channelList = append(t.channelList, ch)
		}
		t.mu.Unlock()
		t.wakePump()
	}
	return nil
}

// Shutdown stops accepting, closes every client (their in-flight messages
// go back to their channels), persists metadata, then writes every queue's
// memory and deferred messages to disk and syncs it. It waits for all of
// that or for ctx.
func (b *Broker) Shutdown(ctx context.Context) error {
	var err error
	b.shutdownOnce.Do(func() {
		done := make(chan error, 1)
		go func() { done <- b.shutdown() }()
		select {
		case err = <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	})
	return err
}

func (b *Broker) shutdown() error {
	b.logger.Info("broker shutting down")
	// 1. Leave the lookups and stop listeners; no new connections.
	if b.lookups != nil {
		b.lookups.shutdown()
	}
	if b.stopStatsd != nil {
		b.stopStatsd()
	}
	b.closeListeners()
	for _, srv := range b.httpServers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
	}
	// 2. Close clients and wait for their handlers; in-flight messages go
	// back to their channels.
	b.mu.Lock()
	b.exiting = true
	clients := make([]*client, 0, len(b.clients))
	for _, c := range b.clients {
		clients = append(clients, c)
	}
	b.mu.Unlock()
	for _, c := range clients {
		c.close(closeBrokerShutdown, nil)
	}
	b.conns.Wait()
	b.serving.Wait()
	// 3. Persist metadata; 4. persist and sync every queue.
	var errs []error
	if b.dataLock != nil {
		errs = append(errs, b.persistMetadata())
	}
	for _, t := range b.Topics() {
		errs = append(errs, t.close())
	}
	unlockDataPath(b.dataLock)
	b.logger.Info("broker stopped")
	return errors.Join(errs...)
}

func (b *Broker) closeListeners() {
	for _, l := range []net.Listener{b.tcpListener, b.httpListener, b.httpsListener} {
		if l != nil {
			_ = l.Close()
		}
	}
}

func buildTLSConfig(o *Options) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("loading --tls-cert/--tls-key: %w", err)
	}
	// As in nsqd, no client certificate is asked for unless a policy says
	// so: one from any other CA is then never refused.
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.NoClientCert,
		MinVersion:   uint16(o.TLSMinVersion),
	}
	switch o.TLSClientAuthPolicy {
	case "require":
		cfg.ClientAuth = tls.RequireAnyClientCert
	case "require-verify":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if o.TLSRootCAFile != "" {
		pool, err := readRootCAFile(o.TLSRootCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}
