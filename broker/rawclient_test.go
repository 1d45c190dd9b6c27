package broker

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"wren/protocol"
)

// rawReadTimeout bounds every wait for a frame or for the server to close.
const rawReadTimeout = 5 * time.Second

// rawMaxFrame bounds the frames a rawClient accepts.
const rawMaxFrame = 16 << 20

// rawClient speaks V2 byte by byte, so tests can send what no real client
// would and see exactly which frames come back.
type rawClient struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialRaw connects to b and sends the V2 magic.
func dialRaw(t testing.TB, b *Broker) *rawClient {
	t.Helper()
	c := dialRawNoMagic(t, b)
	c.sendRaw(t, []byte(protocol.MagicV2))
	return c
}

// dialRawNoMagic connects to b and sends nothing.
func dialRawNoMagic(t testing.TB, b *Broker) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", b.TCPAddr().String(), rawReadTimeout)
	if err != nil {
		t.Fatalf("dial %s: %v", b.TCPAddr(), err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{conn: conn, r: bufio.NewReader(conn)}
}

// sendRaw writes p as it is.
func (c *rawClient) sendRaw(t testing.TB, p []byte) {
	t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(rawReadTimeout))
	if _, err := c.conn.Write(p); err != nil {
		t.Fatalf("write %q: %v", rawTruncate(p), err)
	}
}

// send writes one command; a nil body means the command has none.
func (c *rawClient) send(t testing.TB, name string, body []byte, params ...string) {
	t.Helper()
	c.sendRaw(t, protocol.AppendCommand(nil, name, body, params...))
}

// readFrame reads the next frame that is not a heartbeat.
func (c *rawClient) readFrame() (int32, []byte, error) {
	for {
		_ = c.conn.SetReadDeadline(time.Now().Add(rawReadTimeout))
		frameType, data, err := protocol.ReadFrame(c.r, rawMaxFrame)
		if err != nil {
			return 0, nil, err
		}
		if frameType == protocol.FrameTypeResponse && string(data) == string(protocol.ResponseHeartbeat) {
			continue
		}
		return frameType, data, nil
	}
}

// mustReadFrame reads the next frame that is not a heartbeat, failing the
// test if there is none.
func (c *rawClient) mustReadFrame(t testing.TB) (int32, []byte) {
	t.Helper()
	frameType, data, err := c.readFrame()
	if err != nil {
		t.Fatalf("reading frame: %v", err)
	}
	return frameType, data
}

// expectResponse reads a response frame and checks its data.
func (c *rawClient) expectResponse(t testing.TB, want string) []byte {
	t.Helper()
	frameType, data := c.mustReadFrame(t)
	if frameType != protocol.FrameTypeResponse || string(data) != want {
		t.Fatalf("got frame type %d %q, want response %q", frameType, rawTruncate(data), want)
	}
	return data
}

// expectError reads an error frame and checks its text.
func (c *rawClient) expectError(t testing.TB, want string) {
	t.Helper()
	frameType, data := c.mustReadFrame(t)
	if frameType != protocol.FrameTypeError || string(data) != want {
		t.Fatalf("got frame type %d %q, want error %q", frameType, rawTruncate(data), want)
	}
}

// expectMessage reads a message frame and decodes it.
func (c *rawClient) expectMessage(t testing.TB) protocol.Message {
	t.Helper()
	frameType, data := c.mustReadFrame(t)
	if frameType != protocol.FrameTypeMessage {
		t.Fatalf("got frame type %d %q, want a message", frameType, rawTruncate(data))
	}
	m, err := protocol.DecodeMessage(data)
	if err != nil {
		t.Fatalf("decoding message frame: %v", err)
	}
	return m
}

// expectClosed checks that the server closes the connection without
// sending another frame (heartbeats aside).
func (c *rawClient) expectClosed(t testing.TB) {
	t.Helper()
	frameType, data, err := c.readFrame()
	if err == nil {
		t.Fatalf("got frame type %d %q, want the connection closed", frameType, rawTruncate(data))
	}
	if !isClosedErr(err) {
		t.Fatalf("got %v, want the connection closed (EOF or reset)", err)
	}
}

// isClosedErr reports whether err is how a read sees a peer's close.
func isClosedErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// expectAlive checks the connection still executes commands: a NOP gets
// no reply, and the PUB after it gets OK as the very next frame.
func (c *rawClient) expectAlive(t testing.TB) {
	t.Helper()
	c.send(t, "NOP", nil)
	c.send(t, "PUB", []byte("ok"), "raw_alive")
	c.expectResponse(t, "OK")
}

// identify sends IDENTIFY with fields as its JSON body and returns the
// response: "OK", or the negotiated features when feature_negotiation is set.
func (c *rawClient) identify(t testing.TB, fields map[string]any) []byte {
	t.Helper()
	body, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, "IDENTIFY", body)
	frameType, data := c.mustReadFrame(t)
	if frameType != protocol.FrameTypeResponse {
		t.Fatalf("IDENTIFY %s: got frame type %d %q", body, frameType, data)
	}
	return data
}

// startTLS runs the client side of the TLS upgrade after an IDENTIFY that
// negotiated tls_v1, and reads the OK the server sends over TLS.
func (c *rawClient) startTLS(t testing.TB) {
	t.Helper()
	if n := c.r.Buffered(); n > 0 {
		t.Fatalf("%d bytes buffered before the TLS handshake", n)
	}
	tlsConn := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	_ = tlsConn.SetDeadline(time.Now().Add(rawReadTimeout))
	if err := tlsConn.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	_ = tlsConn.SetDeadline(time.Time{})
	c.conn = tlsConn
	c.r = bufio.NewReader(tlsConn)
	c.expectResponse(t, "OK")
}

// rawSize is a 4-byte big-endian body size, as the protocol sends it;
// negative sizes wrap as they would from a hostile client.
func rawSize(n int64) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(n))
}

// rawLine is a command line without a body.
func rawLine(name string, params ...string) []byte {
	return protocol.AppendCommand(nil, name, nil, params...)
}

// rawWithBody is a command line followed by an explicit size prefix and body,
// which need not agree.
func rawWithBody(name string, size int64, body []byte, params ...string) []byte {
	out := rawLine(name, params...)
	out = append(out, rawSize(size)...)
	return append(out, body...)
}

func rawConcat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func rawTruncate(p []byte) []byte {
	if len(p) > 512 {
		return p[:512]
	}
	return p
}
