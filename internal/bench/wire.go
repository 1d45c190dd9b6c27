package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"wren/protocol"
)

const (
	// connBufferSize is each connection's read and write buffer: large
	// enough that a consumer parses many messages per read(2).
	connBufferSize = 64 << 10
	// maxFrameSize bounds a frame's declared size, so a broken or hostile
	// peer cannot make the client allocate without limit.
	maxFrameSize = 64 << 20
	dialTimeout  = 5 * time.Second
	// handshakeTimeout bounds IDENTIFY and SUB, which a broker answers at
	// once.
	handshakeTimeout = 5 * time.Second
	// stopGrace is how long a round trip under way when a run ends may
	// still take, so that messages the broker accepted are counted.
	stopGrace = 2 * time.Second
)

// BrokerError is an error frame sent by the broker, such as
// "E_BAD_TOPIC PUB topic name ... is not valid".
type BrokerError struct {
	Text string
}

func (e *BrokerError) Error() string { return "broker error: " + e.Text }

// frameReader reads V2 frames. A frame that fits the buffer is returned
// in place, so reading allocates nothing.
type frameReader struct {
	r       *bufio.Reader
	scratch []byte // for frames larger than r's buffer
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: bufio.NewReaderSize(r, connBufferSize)}
}

// next reads one frame. data aliases the reader's buffer and is valid only
// until the next call.
func (f *frameReader) next() (frameType int32, data []byte, err error) {
	hdr, err := f.r.Peek(protocol.FrameHeaderSize)
	if err != nil {
		return 0, nil, err
	}
	size := int64(binary.BigEndian.Uint32(hdr))
	if size < 4 || size > maxFrameSize {
		return 0, nil, fmt.Errorf("bad frame size %d", size)
	}
	frameType = int32(binary.BigEndian.Uint32(hdr[4:]))
	total := int(4 + size)
	if total <= f.r.Size() {
		frame, err := f.r.Peek(total)
		if err != nil {
			return 0, nil, err
		}
		_, _ = f.r.Discard(total)
		return frameType, frame[protocol.FrameHeaderSize:], nil
	}
	_, _ = f.r.Discard(protocol.FrameHeaderSize)
	n := total - protocol.FrameHeaderSize
	if cap(f.scratch) < n {
		f.scratch = make([]byte, n)
	}
	data = f.scratch[:n]
	if _, err := io.ReadFull(f.r, data); err != nil {
		return 0, nil, err
	}
	return frameType, data, nil
}

// frameBuffered reports whether a whole frame is already buffered, so that
// the next call to next will not wait for the network.
func (f *frameReader) frameBuffered() bool {
	n := f.r.Buffered()
	if n < 4 {
		return false
	}
	hdr, _ := f.r.Peek(4)
	return int64(n) >= 4+int64(binary.BigEndian.Uint32(hdr))
}

// brokerConn is one client connection to a broker, after IDENTIFY.
type brokerConn struct {
	nc     net.Conn
	frames *frameReader
	w      *bufio.Writer
	// maxRDY is the broker's max_rdy_count, or 0 when it did not say.
	maxRDY int64
}

// dialBroker connects to addr, sends the magic and IDENTIFY with
// feature_negotiation, and checks the reply. Output buffering is left at
// the broker's defaults, as go-nsq leaves it, so that numbers compare with
// what real clients see.
func dialBroker(ctx context.Context, addr string) (*brokerConn, error) {
	dialer := net.Dialer{Timeout: dialTimeout}
	nc, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &brokerConn{nc: nc, frames: newFrameReader(nc), w: bufio.NewWriterSize(nc, connBufferSize)}
	if err := c.identify(); err != nil {
		nc.Close()
		return nil, fmt.Errorf("IDENTIFY with %s: %w", addr, err)
	}
	return c, nil
}

func (c *brokerConn) identify() error {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	hostname, _ := os.Hostname()
	body, err := json.Marshal(protocol.IdentifyData{
		ClientID:           "wren-bench",
		Hostname:           hostname,
		UserAgent:          "wren-bench",
		FeatureNegotiation: true,
	})
	if err != nil {
		return err
	}
	_, _ = c.w.WriteString(protocol.MagicV2)
	_, _ = c.w.Write(protocol.AppendCommand(nil, "IDENTIFY", body))
	if err := c.w.Flush(); err != nil {
		return err
	}
	reply, err := c.response()
	if err != nil {
		return err
	}
	if len(reply) > 0 && reply[0] == '{' {
		var negotiated protocol.IdentifyResponse
		if err := json.Unmarshal(reply, &negotiated); err != nil {
			return fmt.Errorf("bad feature negotiation reply %q: %w", reply, err)
		}
		if negotiated.AuthRequired {
			return errors.New("the broker requires AUTH, which wren bench does not send")
		}
		c.maxRDY = negotiated.MaxRdyCount
	} else if !bytes.Equal(reply, protocol.ResponseOK) {
		return fmt.Errorf("unexpected reply %q", reply)
	}
	return c.nc.SetDeadline(time.Time{})
}

// subscribe sends SUB and waits for its OK.
func (c *brokerConn) subscribe(topic, channel string) error {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.roundTrip(protocol.AppendCommand(nil, "SUB", nil, topic, channel)); err != nil {
		return fmt.Errorf("SUB %s %s: %w", topic, channel, err)
	}
	return c.nc.SetDeadline(time.Time{})
}

// ready sends RDY, which has no reply, capped at the broker's
// max_rdy_count: nsqd closes a connection that asks for more.
func (c *brokerConn) ready(rdy int64) error {
	if c.maxRDY > 0 && rdy > c.maxRDY {
		rdy = c.maxRDY
	}
	_, _ = fmt.Fprintf(c.w, "RDY %d\n", rdy)
	return c.w.Flush()
}

// roundTrip writes cmd and waits for its OK.
func (c *brokerConn) roundTrip(cmd []byte) error {
	_, _ = c.w.Write(cmd)
	if err := c.w.Flush(); err != nil {
		return c.reasonForClose(err)
	}
	reply, err := c.response()
	if err != nil {
		return err
	}
	if !bytes.Equal(reply, protocol.ResponseOK) {
		return fmt.Errorf("unexpected reply %q", reply)
	}
	return nil
}

// response reads the next response frame, answering heartbeats on the
// way: a publisher that paces itself can be idle long enough for the
// broker to send one between its commands.
func (c *brokerConn) response() ([]byte, error) {
	for {
		frameType, data, err := c.frames.next()
		if err != nil {
			return nil, err
		}
		switch frameType {
		case protocol.FrameTypeResponse:
			if bytes.Equal(data, protocol.ResponseHeartbeat) {
				if err := c.nop(); err != nil {
					return nil, err
				}
				continue
			}
			return data, nil
		case protocol.FrameTypeError:
			return nil, &BrokerError{Text: string(data)}
		default:
			return nil, fmt.Errorf("unexpected frame type %d", frameType)
		}
	}
}

// reasonForClose explains a failed write. A broker that refuses a command,
// such as an MPUB over its --max-body-size, sends an error frame and
// closes before reading the rest, so the write fails with a reset while
// the reason waits unread; it is returned when it arrives soon.
func (c *brokerConn) reasonForClose(writeErr error) error {
	if isTimeout(writeErr) {
		return writeErr // a deadline from stopOnDone, not the broker
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
	_, err := c.response()
	if brokerErr, ok := errors.AsType[*BrokerError](err); ok {
		return brokerErr
	}
	return writeErr
}

func (c *brokerConn) nop() error {
	_, _ = c.w.WriteString("NOP\n")
	return c.w.Flush()
}

// stopOnDone arranges for c's blocked reads to fail readGrace after ctx is
// done, and its writes stopGrace after, so that every loop ends even
// against a broker that stops answering. A consumer passes a readGrace of
// 0 to stop waiting at once, while the FINs it has buffered still go out.
// The returned func cancels the arrangement.
func (c *brokerConn) stopOnDone(ctx context.Context, readGrace time.Duration) (cancel func() bool) {
	return context.AfterFunc(ctx, func() {
		now := time.Now()
		_ = c.nc.SetReadDeadline(now.Add(readGrace))
		_ = c.nc.SetWriteDeadline(now.Add(stopGrace))
	})
}

func (c *brokerConn) close() error { return c.nc.Close() }

// isTimeout reports whether err is a deadline set by stopOnDone expiring.
func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}
