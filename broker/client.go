package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
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

// defaultBufferSize is the output_buffer_size of a client that does not
// ask for one, as in nsqd.
const defaultBufferSize = 16 * 1024

// client is one V2 connection. Its reader loop (Broker.readLoop) parses
// commands; from SUB on, its pump goroutine delivers messages, sends
// heartbeats and times out in-flight messages. Before SUB there is nothing
// to deliver, and a timer sends the heartbeats instead of a goroutine, so
// a publisher or an idle connection costs one goroutine. Frames are
// appended to the output buffer under writeMu: responses from the reader
// are flushed before it next waits on the socket, messages are batched by
// the pump and flushed when it has nothing more ready to send. Between
// bursts the client holds no output buffer and only a small read buffer
// (see connbuf.go).
type client struct {
	id         int64
	remoteAddr string
	connectTS  time.Time
	logger     *slog.Logger

	raw     net.Conn // the socket; read deadlines are set on it
	conn    net.Conn // raw, or the TLS connection over it
	reader  *connReader
	rawConn syscall.RawConn // raw's, made by readAvailable when first needed
	// commandStarting says the reader loop has started a command whose
	// read deadline is not set yet; readDeadlineSet that one is set. The
	// reader goroutine's (slowclient.go).
	commandStarting bool
	readDeadlineSet bool
	// bodyBufferSize is the capacity of a body buffer being grown as its
	// bytes arrive; 0 otherwise (appendBody).
	bodyBufferSize atomic.Int64

	writeMu sync.Mutex
	// out holds frames not yet written to dst; it lives in outBuf, a
	// pooled buffer borrowed at the first frame after a flush and given
	// back by the flush that leaves nothing pending. Both are nil between
	// bursts. out is written to dst once it holds outLimit bytes (the
	// client's output_buffer_size).
	out        []byte
	outBuf     *[]byte
	outLimit   int
	dst        io.Writer                  // conn, or the compressor over it
	flusher    interface{ Flush() error } // the compressor, if any
	writeDL    time.Time                  // write deadline currently set
	writeErr   error
	unbuffered bool
	// responsePending says the reader loop wrote responses that are not
	// flushed yet; they go out before it next waits on the socket.
	responsePending atomic.Bool
	// idleHeartbeat sends heartbeats until the pump starts; pumpStarted
	// is set, by the reader goroutine, when it does. Both guarded by
	// writeMu.
	idleHeartbeat *time.Timer
	pumpStarted   bool

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

	// The region and zone the client sent in IDENTIFY (under writeMu, for
	// /stats), and where they put it for this node: fixed before SUB, read
	// by the channel under its lock (topology.go).
	topologyRegion string
	topologyZone   string
	locality       locality
	// info is what /stats shows of the above, replaced after each change
	// so /stats never takes writeMu (slowclient.go).
	info atomic.Pointer[clientInfo]

	state     atomic.Int32
	rdy       atomic.Int64
	channel   atomic.Pointer[Channel]
	wake      chan struct{}
	exit      chan struct{}
	exitOnce  sync.Once
	pumpDone  chan struct{}
	closedFor atomic.Int32 // the first close's closeReason; its detail is logged

	batch []*message // the pump's, grown to min(RDY, maxBatch) as needed

	mu        sync.Mutex // guards inFlight and pubCounts
	inFlight  inFlight
	inFlightN atomic.Int64 // inFlight.len(), readable without mu
	pubCounts map[string]uint64

	messageCount atomic.Uint64
	finishCount  atomic.Uint64
	requeueCount atomic.Uint64

	auth clientAuth // see protocol_v2_auth.go
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
	c.reader = newConnReader(deadlineReader{c})
	c.dst = conn
	c.setOutputLimitLocked(settings.OutputBufferSize)
	c.heartbeatNS.Store(int64(settings.HeartbeatInterval))
	c.msgTimeoutNS.Store(int64(settings.MsgTimeout))
	c.state.Store(stateInit)
	c.publishInfoLocked() // nobody else has c yet
	return c
}

// deadlineReader sets the read deadline on the first read of the socket
// for each command and leaves it for the rest of that command: with
// heartbeats a client must send each whole command within two intervals
// (startCommandDeadline).
type deadlineReader struct{ c *client }

func (d deadlineReader) Read(p []byte) (int, error) {
	if d.c.responsePending.Load() {
		d.c.writeMu.Lock()
		err := d.c.flushLocked()
		d.c.writeMu.Unlock()
		if err != nil {
			d.c.close(closeWriteError, err) // not a read error, whatever it says
			return 0, err
		}
	}
	if d.c.commandStarting {
		d.c.startCommandDeadline()
	}
	return d.c.conn.Read(p)
}

// readAvailable reads the bytes that have arrived on a plain TCP socket
// without waiting (see connReader.readAvailable); not for TLS, whose
// records may need bytes still on their way.
func (d deadlineReader) readAvailable(p []byte) (int, bool, error) {
	c := d.c
	if c.conn != c.raw {
		return 0, false, nil
	}
	if c.rawConn == nil {
		sc, ok := c.raw.(syscall.Conn)
		if !ok {
			return 0, false, nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return 0, false, nil
		}
		c.rawConn = rc
	}
	var n int
	var readErr error
	err := c.rawConn.Read(func(fd uintptr) bool {
		for {
			n, readErr = syscall.Read(int(fd), p)
			if readErr != syscall.EINTR {
				return true // done, whatever it read: never wait
			}
		}
	})
	switch {
	case err != nil: // a read deadline that has passed, or a closed socket
		return 0, true, err
	case readErr == syscall.EAGAIN:
		return 0, true, nil
	case readErr != nil:
		return 0, true, os.NewSyscallError("read", readErr)
	case n == 0 && len(p) > 0:
		return 0, true, io.EOF
	}
	return n, true, nil
}

// startIdleHeartbeats arms the timer that sends heartbeats until the pump
// starts, at the current heartbeat interval; none when heartbeats are
// disabled. c.writeMu must be held.
func (c *client) startIdleHeartbeatsLocked() {
	hb := time.Duration(c.heartbeatNS.Load())
	if c.pumpStarted || hb <= 0 {
		if c.idleHeartbeat != nil {
			c.idleHeartbeat.Stop()
		}
		return
	}
	if c.idleHeartbeat == nil {
		c.idleHeartbeat = time.AfterFunc(hb, c.sendIdleHeartbeat)
		return
	}
	c.idleHeartbeat.Reset(hb)
}

// sendIdleHeartbeat runs on the timer's goroutine: it sends a heartbeat
// and arms the timer again, unless the pump has taken over or the client
// is closing.
func (c *client) sendIdleHeartbeat() {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.pumpStarted || c.isClosing() {
		return
	}
	if err := c.writeFrameLocked(protocol.FrameTypeResponse, protocol.ResponseHeartbeat); err != nil {
		c.close(closeWriteError, err)
		return
	}
	c.startIdleHeartbeatsLocked()
}

// startPump hands heartbeats over to the pump goroutine and starts it; the
// reader calls it once, at SUB.
func (c *client) startPump() {
	c.writeMu.Lock()
	c.pumpStarted = true
	if c.idleHeartbeat != nil {
		c.idleHeartbeat.Stop()
	}
	c.writeMu.Unlock()
	go c.pump()
}

// waitPump waits for the pump to stop after close, if it was started;
// called by the reader goroutine, which alone starts it.
func (c *client) waitPump() {
	c.writeMu.Lock()
	started := c.pumpStarted
	c.pumpStarted = true // no idle heartbeat from now on
	if c.idleHeartbeat != nil {
		c.idleHeartbeat.Stop()
	}
	c.writeMu.Unlock()
	if started {
		<-c.pumpDone
	}
}

func (c *client) isClosing() bool {
	select {
	case <-c.exit:
		return true
	default:
		return false
	}
}

func (c *client) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// close ends the connection, once: the first call's reason and err (the
// failed read or write, the fatal protocol error; nil when there is none)
// are kept and logged here, at Debug for a client's own quit and at Info
// otherwise. Later calls do nothing, so a read that fails because the
// socket was closed for another reason does not replace that reason. Safe
// from any goroutine, with or without writeMu.
func (c *client) close(reason closeReason, err error) {
	if reason == closeWriteError && errors.Is(err, os.ErrDeadlineExceeded) {
		reason = closeWriteTimeout // a client that stopped reading
	}
	c.exitOnce.Do(func() {
		c.closedFor.Store(int32(reason))
		close(c.exit)
		_ = c.raw.Close()
		if err != nil {
			c.logger.Log(context.Background(), reason.logLevel(), "client closed", "reason", reason.String(), "err", err)
		} else {
			c.logger.Log(context.Background(), reason.logLevel(), "client closed", "reason", reason.String())
		}
	})
}

// closeReason is why the client was closed; closeNone while it is open.
func (c *client) closeReason() closeReason { return closeReason(c.closedFor.Load()) }

// writeResponse writes a response to a command without flushing it: the
// reader flushes before it next waits on the socket, so a read's worth of
// pipelined commands is answered with one write.
func (c *client) writeResponse(data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	out, err := c.startFrameLocked(protocol.FrameHeaderSize + len(data))
	if err != nil {
		return err
	}
	if err := c.appendedLocked(protocol.AppendFrame(out, protocol.FrameTypeResponse, data)); err != nil {
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
	return c.writeFrameLocked(frameType, data)
}

// writeFrameLocked writes one frame and flushes it; c.writeMu must be held.
func (c *client) writeFrameLocked(frameType int32, data []byte) error {
	out, err := c.startFrameLocked(protocol.FrameHeaderSize + len(data))
	if err != nil {
		return err
	}
	if err := c.appendedLocked(protocol.AppendFrame(out, frameType, data)); err != nil {
		return err
	}
	return c.flushLocked()
}

func (c *client) writeError(e *protocol.Error) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	out, err := c.startFrameLocked(protocol.FrameHeaderSize + len(e.Code) + 1 + len(e.Desc))
	if err != nil {
		return err
	}
	if err := c.appendedLocked(protocol.AppendErrorFrame(out, e)); err != nil {
		return err
	}
	return c.flushLocked()
}

// startFrameLocked is startWriteLocked and reserveLocked for one frame.
// c.writeMu must be held.
func (c *client) startFrameLocked(n int) ([]byte, error) {
	if err := c.startWriteLocked(); err != nil {
		return nil, err
	}
	return c.reserveLocked(n)
}

// startWriteLocked begins writing frames: it fails after an earlier write
// error and keeps the write deadline current. c.writeMu must be held.
func (c *client) startWriteLocked() error {
	if c.writeErr != nil {
		return c.writeErr
	}
	c.refreshWriteDeadlineLocked()
	return nil
}

// reserveLocked returns the output buffer with room for a frame of n
// bytes, borrowing a buffer if the client holds none and writing out what
// is buffered if the frame would take it past the client's output buffer
// size. The caller appends the frame and hands the result to
// appendedLocked. c.writeMu must be held.
func (c *client) reserveLocked(n int) ([]byte, error) {
	if c.outBuf == nil {
		c.outBuf = getOutputBuffer(c.outLimit)
		c.out = *c.outBuf
	} else if len(c.out) > 0 && len(c.out)+n > c.outLimit {
		if err := c.writeOutLocked(); err != nil {
			return nil, err
		}
	}
	return c.out, nil
}

// appendedLocked keeps out, the output buffer with frames appended, and
// writes it out once it holds the client's output buffer size. c.writeMu
// must be held.
func (c *client) appendedLocked(out []byte) error {
	c.out = out
	if len(out) >= c.outLimit {
		return c.writeOutLocked()
	}
	return nil
}

// writeOutLocked writes the output buffer to dst without flushing a
// compressor, as a full bufio.Writer would. c.writeMu must be held.
func (c *client) writeOutLocked() error {
	_, err := c.dst.Write(c.out)
	c.out = c.out[:0]
	if err != nil {
		c.writeErr = err
	}
	return err
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

// flushLocked writes everything buffered, flushes the compressor, and
// gives the output buffer back. c.writeMu must be held.
func (c *client) flushLocked() error {
	if c.writeErr != nil {
		return c.writeErr
	}
	c.responsePending.Store(false)
	if len(c.out) > 0 {
		if err := c.writeOutLocked(); err != nil {
			return err
		}
	}
	c.releaseOutputLocked()
	if c.flusher != nil {
		if err := c.flusher.Flush(); err != nil {
			c.writeErr = err
			return err
		}
	}
	return nil
}

// releaseOutputLocked gives the output buffer back to its pool; anything
// still in it is dropped. c.writeMu must be held.
func (c *client) releaseOutputLocked() {
	if c.outBuf == nil {
		return
	}
	*c.outBuf = c.out[:0]
	putOutputBuffer(c.outBuf)
	c.outBuf, c.out = nil, nil
}

// releaseBuffers gives the connection's buffers back once its reader and
// pump have stopped.
func (c *client) releaseBuffers() {
	c.reader.release()
	c.writeMu.Lock()
	c.releaseOutputLocked()
	c.writeMu.Unlock()
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
	c.dst = tlsConn
	c.replaceReader(deadlineReader{c})
	return nil
}

// upgradeSnappy and upgradeDeflate wrap both directions in a compressor.
// Called with writeMu held, after the response that grants them.
func (c *client) upgradeSnappy() {
	c.replaceReader(snappy.NewReader(c.pendingInput(deadlineReader{c})))
	sw := snappy.NewBufferedWriter(c.conn)
	c.flusher, c.dst = sw, sw
}

func (c *client) upgradeDeflate(level int) {
	c.replaceReader(flate.NewReader(c.pendingInput(deadlineReader{c})))
	fw, _ := flate.NewWriter(c.conn, level) // level is clamped to 1..9 by IDENTIFY
	c.flusher, c.dst = fw, fw
}

// replaceReader reads from src from now on; the old reader's buffered
// bytes must have been taken with pendingInput.
func (c *client) replaceReader(src io.Reader) {
	c.reader.release()
	c.reader = newConnReader(src)
}

// pendingInput returns next preceded by whatever the current reader has
// buffered, so bytes that arrived before an upgrade are not lost.
func (c *client) pendingInput(next io.Reader) io.Reader {
	if c.reader.buffered() > 0 {
		return io.MultiReader(bytes.NewReader(c.reader.takeBuffered()), next)
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

// applySettingsLocked installs IDENTIFY's settings: the output buffer size
// and the heartbeat interval. c.writeMu must be held.
func (c *client) applySettingsLocked(s protocol.ClientSettings) {
	c.settings = s
	c.heartbeatNS.Store(int64(s.HeartbeatInterval))
	c.msgTimeoutNS.Store(int64(s.MsgTimeout))
	c.sampleRate.Store(s.SampleRate)
	c.setOutputLimitLocked(s.OutputBufferSize)
}

// setOutputLimitLocked sets the output buffer size; 0 means unbuffered
// (every frame is flushed at once). Frames already buffered are written
// out first, as resizing a bufio.Writer would. c.writeMu must be held.
func (c *client) setOutputLimitLocked(size int) {
	c.unbuffered = size == 0
	size = max(size, 64)
	if size == c.outLimit {
		return
	}
	if len(c.out) > 0 && c.writeErr == nil {
		_ = c.writeOutLocked()
	}
	c.releaseOutputLocked()
	c.outLimit = size
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
