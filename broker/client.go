package broker

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/klauspost/compress/flate"

	"wren/protocol"
)

// Client states, numbered as nsqd reports them in /stats.
const (
	stateInit         int32 = 0
	stateDisconnected int32 = 1
	stateConnected    int32 = 2
	stateSubscribed   int32 = 3
	stateClosing      int32 = 4
)

const defaultBufferSize = 16 * 1024

// client is one V2 connection. Its reader loop (protocolV2.serve) parses
// commands; its pump goroutine delivers messages, sends heartbeats and
// times out in-flight messages. Both write frames under writeMu: responses
// from the reader are flushed at once, messages are batched by the pump and
// flushed when it has nothing more ready to send.
type client struct {
	id         int64
	remoteAddr string
	connectTS  time.Time
	logger     *slog.Logger

	raw    net.Conn // the socket; read deadlines are set on it
	conn   net.Conn // raw, or the TLS connection over it
	reader *bufio.Reader

	writeMu    sync.Mutex
	writer     *bufio.Writer
	flusher    interface{ Flush() error } // the compressor, if any
	frameBuf   []byte
	writeDL    time.Time // write deadline currently set
	writeErr   error
	unbuffered bool
	// responsePending says the reader loop wrote responses that are not
	// flushed yet; they go out before it next waits on the socket.
	responsePending atomic.Bool

	// Settings are written by the reader during IDENTIFY, before the pump
	// reads them again (it is woken after); guarded by writeMu for the pump.
	settings     protocol.ClientSettings
	clientID     string
	hostname     string
	userAgent    string
	tlsState     *tls.ConnectionState
	heartbeatNS  atomic.Int64
	msgTimeoutNS atomic.Int64
	sampleRate   atomic.Int32

	state    atomic.Int32
	rdy      atomic.Int64
	channel  atomic.Pointer[Channel]
	wake     chan struct{}
	exit     chan struct{}
	exitOnce sync.Once
	pumpDone chan struct{}
	reason   atomic.Pointer[string]

	diskScratch []protocol.Message // the pump's, for decoding disk records

	mu        sync.Mutex // guards inFlight and pubCounts
	inFlight  inFlight
	inFlightN atomic.Int64 // inFlight.len(), readable without mu
	pubCounts map[string]uint64

	messageCount atomic.Uint64
	finishCount  atomic.Uint64
	requeueCount atomic.Uint64
}

func newClient(id int64, conn net.Conn, settings protocol.ClientSettings, logger *slog.Logger) *client {
	c := &client{
		id:         id,
		remoteAddr: conn.RemoteAddr().String(),
		connectTS:  time.Now(),
		raw:        conn,
		conn:       conn,
		settings:   settings,
		wake:       make(chan struct{}, 1),
		exit:       make(chan struct{}),
		pumpDone:   make(chan struct{}),
	}
	c.logger = logger.With("client", c.remoteAddr)
	if host, _, err := net.SplitHostPort(c.remoteAddr); err == nil {
		c.hostname = host
		c.clientID = host
	} else {
		c.hostname, c.clientID = c.remoteAddr, c.remoteAddr
	}
	c.reader = bufio.NewReaderSize(deadlineReader{c}, defaultBufferSize)
	c.writer = bufio.NewWriterSize(conn, defaultBufferSize)
	c.heartbeatNS.Store(int64(settings.HeartbeatInterval))
	c.msgTimeoutNS.Store(int64(settings.MsgTimeout))
	c.state.Store(stateInit)
	return c
}

// deadlineReader refreshes the read deadline before every read of the
// socket: one deadline per buffer fill, not per command. With heartbeats
// the client must say something at least every two intervals.
type deadlineReader struct{ c *client }

func (d deadlineReader) Read(p []byte) (int, error) {
	if d.c.responsePending.Load() {
		d.c.writeMu.Lock()
		err := d.c.flushLocked()
		d.c.writeMu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	if hb := time.Duration(d.c.heartbeatNS.Load()); hb > 0 {
		_ = d.c.raw.SetReadDeadline(time.Now().Add(2 * hb))
	} else {
		_ = d.c.raw.SetReadDeadline(time.Time{})
	}
	return d.c.conn.Read(p)
}

func (c *client) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close ends the connection once, for the given reason.
func (c *client) close(reason string) {
	c.exitOnce.Do(func() {
		c.reason.Store(&reason)
		close(c.exit)
		_ = c.raw.Close()
	})
}

// writeResponse writes a response to a command without flushing it: the
// reader flushes before it next waits on the socket, so a read's worth of
// pipelined commands is answered with one write.
func (c *client) writeResponse(data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.writeErr != nil {
		return c.writeErr
	}
	c.refreshWriteDeadlineLocked()
	c.frameBuf = protocol.AppendFrame(c.frameBuf[:0], protocol.FrameTypeResponse, data)
	if _, err := c.writer.Write(c.frameBuf); err != nil {
		c.writeErr = err
		return err
	}
	if c.unbuffered {
		return c.flushLocked()
	}
	c.responsePending.Store(true)
	return nil
}

// writeFrame writes one frame and flushes it; used for heartbeats.
func (c *client) writeFrame(frameType int32, data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.frameBuf = protocol.AppendFrame(c.frameBuf[:0], frameType, data)
	return c.writeAndFlushLocked(c.frameBuf)
}

func (c *client) writeError(e *protocol.Error) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.frameBuf = protocol.AppendErrorFrame(c.frameBuf[:0], e)
	return c.writeAndFlushLocked(c.frameBuf)
}

// c.writeMu must be held.
func (c *client) writeAndFlushLocked(b []byte) error {
	if c.writeErr != nil {
		return c.writeErr
	}
	c.refreshWriteDeadlineLocked()
	if _, err := c.writer.Write(b); err != nil {
		c.writeErr = err
		return err
	}
	return c.flushLocked()
}

// refreshWriteDeadlineLocked keeps a write deadline of one heartbeat
// interval ahead, touching the socket only when the deadline has come
// within half an interval: once per many writes instead of once per
// message. c.writeMu must be held.
func (c *client) refreshWriteDeadlineLocked() {
	hb := time.Duration(c.heartbeatNS.Load())
	if hb <= 0 {
		if !c.writeDL.IsZero() {
			_ = c.raw.SetWriteDeadline(time.Time{})
			c.writeDL = time.Time{}
		}
		return
	}
	now := time.Now()
	if c.writeDL.IsZero() || c.writeDL.Sub(now) < hb/2 {
		c.writeDL = now.Add(hb)
		_ = c.raw.SetWriteDeadline(c.writeDL)
	}
}

// c.writeMu must be held.
func (c *client) flushLocked() error {
	if c.writeErr != nil {
		return c.writeErr
	}
	c.responsePending.Store(false)
	if err := c.writer.Flush(); err != nil {
		c.writeErr = err
		return err
	}
	if c.flusher != nil {
		if err := c.flusher.Flush(); err != nil {
			c.writeErr = err
			return err
		}
	}
	return nil
}

// upgradeTLS performs the server side of the TLS handshake on the socket.
// The reader loop calls it with writeMu held, after sending the IDENTIFY
// response in the clear.
func (c *client) upgradeTLS(cfg *tls.Config) error {
	tlsConn := tls.Server(prefixConn{Conn: c.raw, r: c.pendingInput(c.raw)}, cfg)
	_ = c.raw.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tlsConn.Handshake(); err != nil {
		return err
	}
	_ = c.raw.SetDeadline(time.Time{})
	c.writeDL = time.Time{}
	state := tlsConn.ConnectionState()
	c.tlsState = &state
	c.conn = tlsConn
	c.reader = bufio.NewReaderSize(deadlineReader{c}, defaultBufferSize)
	c.writer = bufio.NewWriterSize(tlsConn, c.writer.Size())
	return nil
}

// upgradeSnappy and upgradeDeflate wrap both directions in a compressor.
// Called with writeMu held, after the response that grants them.
func (c *client) upgradeSnappy() {
	c.reader = bufio.NewReaderSize(snappy.NewReader(c.pendingInput(deadlineReader{c})), defaultBufferSize)
	sw := snappy.NewBufferedWriter(c.conn)
	c.flusher = sw
	c.writer = bufio.NewWriterSize(sw, c.writer.Size())
}

func (c *client) upgradeDeflate(level int) {
	c.reader = bufio.NewReaderSize(flate.NewReader(c.pendingInput(deadlineReader{c})), defaultBufferSize)
	fw, _ := flate.NewWriter(c.conn, level) // level is clamped to 1..9 by IDENTIFY
	c.flusher = fw
	c.writer = bufio.NewWriterSize(fw, c.writer.Size())
}

// pendingInput returns next preceded by whatever the current reader has
// buffered, so bytes that arrived before an upgrade are not lost.
func (c *client) pendingInput(next io.Reader) io.Reader {
	if n := c.reader.Buffered(); n > 0 {
		b, _ := c.reader.Peek(n)
		return io.MultiReader(bytes.NewReader(append([]byte(nil), b...)), next)
	}
	return next
}

// prefixConn is a net.Conn whose reads come from r (buffered bytes, then the
// socket).
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// applySettings installs IDENTIFY's settings: the output buffer size and
// the heartbeat interval. Called with writeMu held.
func (c *client) applySettingsLocked(s protocol.ClientSettings) {
	c.settings = s
	c.heartbeatNS.Store(int64(s.HeartbeatInterval))
	c.msgTimeoutNS.Store(int64(s.MsgTimeout))
	c.sampleRate.Store(s.SampleRate)
	size := s.OutputBufferSize
	c.unbuffered = size == 0
	if size < 64 {
		size = 64
	}
	if size != c.writer.Size() {
		_ = c.writer.Flush()
		c.writer = bufio.NewWriterSize(c.writerTarget(), size)
	}
}

func (c *client) writerTarget() io.Writer {
	if w, ok := c.flusher.(io.Writer); ok {
		return w
	}
	return c.conn
}

// readyCapacity is how many more messages the client can take now: its
// RDY count less what it has in flight.
func (c *client) readyCapacity() int {
	if c.state.Load() != stateSubscribed {
		return 0
	}
	ch := c.channel.Load()
	if ch == nil || ch.IsPaused() {
		return 0
	}
	n := c.rdy.Load() - c.inFlightN.Load()
	if n <= 0 {
		return 0
	}
	return int(n)
}

// sample reports whether a message should be delivered under the client's
// sample rate; skipped messages are dropped from the channel.
func (c *client) sample(rate int32) bool {
	return rate <= 0 || rand.Int32N(100) < rate
}
