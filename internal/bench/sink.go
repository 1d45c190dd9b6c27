package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"wren/internal/listener"
	"wren/protocol"
)

// Sink is a stand-in broker for publishers. It speaks the V2 protocol as
// far as a publisher needs: the magic, IDENTIFY (with feature negotiation
// when asked), PUB, MPUB and DPUB, each answered OK once its body is read,
// and NOP. It keeps nothing, so a publisher run against it measures the
// client, the network and the kernel alone: the ceiling any broker can
// reach on the same machine.
//
// It checks the framing, not the names or sizes a broker would check.
// Commands a publisher never sends (SUB, RDY, FIN, ...) get a fatal
// E_INVALID.
type Sink struct {
	opts   *SinkOptions
	logger *slog.Logger

	listener   net.Listener
	acceptDone chan struct{}
	handlers   sync.WaitGroup

	mu      sync.Mutex
	open    map[net.Conn]struct{} // mu must be held
	closing bool                  // mu must be held

	messages atomic.Int64
}

// NewSink validates opts and returns a Sink; it opens nothing.
func NewSink(opts *SinkOptions) (*Sink, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Sink{opts: opts, logger: logger, open: make(map[net.Conn]struct{})}, nil
}

// Start listens and serves in the background until Shutdown.
func (s *Sink) Start() error {
	l, err := net.Listen("tcp", s.opts.TCPAddress)
	if err != nil {
		return err
	}
	s.listener = l
	s.acceptDone = make(chan struct{})
	go func() {
		defer close(s.acceptDone)
		listener.Serve(l, s.logger, &s.handlers, s.handle)
	}()
	s.logger.Info("sink listening", "tcp_address", l.Addr().String())
	return nil
}

// Addr is the address the sink listens on, useful after listening on
// port 0.
func (s *Sink) Addr() net.Addr { return s.listener.Addr() }

// Messages is the number of messages the sink has answered OK for.
func (s *Sink) Messages() int64 { return s.messages.Load() }

// Shutdown stops accepting, closes every connection and waits for their
// handlers, or for ctx.
func (s *Sink) Shutdown(ctx context.Context) error {
	if s.listener == nil {
		return nil
	}
	_ = s.listener.Close()
	// Once the accept loop is gone no handler can be added, so waiting on
	// the group below is safe.
	<-s.acceptDone
	s.mu.Lock()
	s.closing = true
	for c := range s.open {
		_ = c.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.logger.Info("sink stopped", "messages", s.messages.Load())
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// track records conn for Shutdown to close; it reports false when the
// sink is already closing.
func (s *Sink) track(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.open[conn] = struct{}{}
	return true
}

func (s *Sink) untrack(conn net.Conn) {
	s.mu.Lock()
	delete(s.open, conn)
	s.mu.Unlock()
}

var okFrame = protocol.AppendFrame(nil, protocol.FrameTypeResponse, protocol.ResponseOK)

// handle serves one connection. Replies are buffered and flushed only when
// the reader has no more input buffered, so a read's worth of pipelined
// commands costs one write(2).
func (s *Sink) handle(conn net.Conn) {
	defer conn.Close()
	if !s.track(conn) {
		return
	}
	defer s.untrack(conn)
	r := bufio.NewReaderSize(conn, connBufferSize)
	w := bufio.NewWriterSize(conn, 16<<10)
	magic, err := r.Peek(len(protocol.MagicV2))
	if err != nil {
		return
	}
	if string(magic) != protocol.MagicV2 {
		perr := protocol.Errorf(protocol.CodeBadProtocol, "bad protocol magic %q", magic)
		_, _ = w.Write(protocol.AppendErrorFrame(nil, perr))
		_ = w.Flush()
		return
	}
	_, _ = r.Discard(len(protocol.MagicV2))
	params := make([][]byte, 0, 4)
	for {
		cmd, err := protocol.ReadCommand(r, params)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.logger.Debug("sink connection closed", "remote", conn.RemoteAddr().String(), "err", err)
			}
			return
		}
		if perr := s.execute(cmd, r, w); perr != nil {
			_, _ = w.Write(protocol.AppendErrorFrame(nil, perr))
			if perr.Fatal {
				_ = w.Flush()
				return
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// execute answers one command. cmd aliases r's buffer, so it is read
// before any body is.
func (s *Sink) execute(cmd protocol.Command, r *bufio.Reader, w *bufio.Writer) *protocol.Error {
	// Switching on the conversion itself does not allocate; keeping it in
	// a variable that reaches an error would, for every command.
	switch string(cmd.Name) {
	case "NOP":
		return nil
	case "IDENTIFY":
		return identifyReply(r, w)
	case "PUB":
		return s.publish(cmd, r, w, 1, false)
	case "DPUB":
		return s.publish(cmd, r, w, 2, false)
	case "MPUB":
		return s.publish(cmd, r, w, 1, true)
	case "CLS":
		_, _ = w.Write(protocol.AppendFrame(nil, protocol.FrameTypeResponse, protocol.ResponseCloseWait))
		return nil
	}
	return protocol.Errorf(protocol.CodeInvalid, "invalid command %s (the sink only accepts publishes)", cmd.Name)
}

// publish discards a PUB, DPUB or MPUB body and answers OK.
func (s *Sink) publish(cmd protocol.Command, r *bufio.Reader, w *bufio.Writer, wantParams int, multi bool) *protocol.Error {
	if len(cmd.Params) < wantParams {
		return protocol.Errorf(protocol.CodeInvalid, "%s insufficient number of parameters", cmd.Name)
	}
	n, perr := discardBody(r, multi)
	if perr != nil {
		return perr
	}
	s.messages.Add(n)
	_, _ = w.Write(okFrame)
	return nil
}

// identifyReply reads IDENTIFY's body and answers with nsqd's defaults when
// the client negotiates, and OK otherwise.
func identifyReply(r *bufio.Reader, w *bufio.Writer) *protocol.Error {
	size, err := protocol.ReadSize(r)
	if err != nil || size <= 0 || size > 1<<20 {
		return protocol.NewError(protocol.CodeBadBody, "IDENTIFY invalid body size")
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to read body")
	}
	data, perr := protocol.ParseIdentify(body)
	if perr != nil {
		return perr
	}
	if !data.FeatureNegotiation {
		_, _ = w.Write(okFrame)
		return nil
	}
	reply, err := json.Marshal(protocol.IdentifyResponse{
		MaxRdyCount:         2500,
		Version:             "wren-bench-sink",
		MaxMsgTimeout:       15 * 60 * 1000,
		MsgTimeout:          60 * 1000,
		DeflateLevel:        6,
		MaxDeflateLevel:     6,
		OutputBufferSize:    16 << 10,
		OutputBufferTimeout: 250,
	})
	if err != nil {
		return protocol.NewError(protocol.CodeIdentifyFailed, "IDENTIFY failed").Wrap(err)
	}
	_, _ = w.Write(protocol.AppendFrame(nil, protocol.FrameTypeResponse, reply))
	return nil
}

// discardBody skips a publish body without copying it and returns how many
// messages it held: MPUB's count, else 1.
func discardBody(r *bufio.Reader, multi bool) (int64, *protocol.Error) {
	size, err := protocol.ReadSize(r)
	if err != nil {
		return 0, protocol.NewError(protocol.CodeBadBody, "failed to read body size")
	}
	if size <= 0 || (multi && size < 4) {
		return 0, protocol.Errorf(protocol.CodeBadBody, "invalid body size %d", size)
	}
	n := int64(1)
	if multi {
		head, err := r.Peek(4)
		if err != nil {
			return 0, protocol.NewError(protocol.CodeBadBody, "MPUB failed to read message count")
		}
		n = int64(int32(binary.BigEndian.Uint32(head)))
		if n <= 0 {
			return 0, protocol.Errorf(protocol.CodeBadBody, "MPUB invalid message count %d", n)
		}
	}
	if _, err := r.Discard(int(size)); err != nil {
		return 0, protocol.NewError(protocol.CodeBadBody, "failed to read body")
	}
	return n, nil
}
