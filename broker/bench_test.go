package broker

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"wren/protocol"
)

func benchBodies(n, size int) [][]byte {
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = bytes.Repeat([]byte{'x'}, size)
	}
	return bodies
}

// BenchmarkPublishFanOut measures Topic.Publish handing a 200-message batch
// to 1 and 3 channels (memory queues, no clients), per message.
func BenchmarkPublishFanOut(b *testing.B) {
	for _, channels := range []int{1, 3} {
		b.Run(fmt.Sprintf("channels=%d", channels), func(b *testing.B) {
			br := startTestBroker(b, func(o *Options) { o.MemQueueSize = 1 << 30 })
			topic, _ := br.Topic("bench")
			var chans []*Channel
			for i := 0; i < channels; i++ {
				ch, _ := topic.Channel(fmt.Sprintf("c%d", i))
				chans = append(chans, ch)
			}
			bodies := benchBodies(200, 100)
			b.ReportAllocs()
			b.SetBytes(100)
			b.ResetTimer()
			for i := 0; i < b.N; i += len(bodies) {
				if err := topic.Publish(bodies, 0); err != nil {
					b.Fatal(err)
				}
				if i%(100*len(bodies)) == 0 {
					for _, ch := range chans {
						ch.mu.Lock()
						ch.memory.drain()
						ch.mu.Unlock()
					}
				}
			}
		})
	}
}

// benchConn is a minimal V2 client for benchmarks.
type benchConn struct {
	conn net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	buf  []byte // frame data, reused: valid until the next readFrame
	hdr  [8]byte
}

func dialBenchConn(tb testing.TB, addr net.Addr) *benchConn {
	conn, err := net.Dial("tcp", addr.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	c := &benchConn{conn: conn, r: bufio.NewReaderSize(conn, 64*1024), w: bufio.NewWriterSize(conn, 64*1024)}
	c.w.WriteString(protocol.MagicV2)
	return c
}

func (c *benchConn) readFrame(tb testing.TB) (int32, []byte) {
	hdr := c.hdr[:]
	if _, err := benchReadFull(c.r, hdr); err != nil {
		tb.Fatal(err)
	}
	size := int(binary.BigEndian.Uint32(hdr[:4]))
	if cap(c.buf) < size-4 {
		c.buf = make([]byte, size-4)
	}
	data := c.buf[:size-4]
	if _, err := benchReadFull(c.r, data); err != nil {
		tb.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(hdr[4:])), data
}

// queueModes are the two paths a message can take into a channel: its
// memory queue, or (with --mem-queue-size=0) its disk queue.
var queueModes = []struct {
	name         string
	memQueueSize int64
}{{"memory", 1 << 30}, {"disk", 0}}

// BenchmarkMPUBOverTCP measures publishing 200-message MPUBs of 100-byte
// bodies over one loopback connection, per message, into a channel's
// memory queue or its disk queue.
func BenchmarkMPUBOverTCP(b *testing.B) {
	for _, mode := range queueModes {
		b.Run(mode.name, func(b *testing.B) { benchmarkMPUBOverTCP(b, mode.memQueueSize) })
	}
}

func benchmarkMPUBOverTCP(b *testing.B, memQueueSize int64) {
	br := startTestBroker(b, func(o *Options) { o.MemQueueSize = memQueueSize })
	topic, _ := br.Topic("bench")
	ch, _ := topic.Channel("c")
	c := dialBenchConn(b, br.TCPAddr())
	cmd := protocol.AppendCommand(nil, "MPUB", protocol.AppendMPUBBody(nil, benchBodies(200, 100)), "bench")
	b.ReportAllocs()
	b.SetBytes(100)
	b.ResetTimer()
	for i := 0; i < b.N; i += 200 {
		c.w.Write(cmd)
		if err := c.w.Flush(); err != nil {
			b.Fatal(err)
		}
		if ft, data := c.readFrame(b); ft != protocol.FrameTypeResponse || string(data) != "OK" {
			b.Fatalf("MPUB reply %d %q", ft, data)
		}
		if i%(100*200) == 0 {
			ch.mu.Lock()
			ch.memory.drain()
			ch.mu.Unlock()
		}
	}
}

// BenchmarkMessagePump measures delivery through the client pump: one
// subscriber with RDY 2500 reading message frames and answering FIN,
// per message, from the channel's memory queue or from its disk queue
// (200-message records).
func BenchmarkMessagePump(b *testing.B) {
	for _, mode := range queueModes {
		b.Run(mode.name, func(b *testing.B) { benchmarkMessagePump(b, mode.memQueueSize) })
	}
}

func benchmarkMessagePump(b *testing.B, memQueueSize int64) {
	br := startTestBroker(b, func(o *Options) { o.MemQueueSize = memQueueSize })
	topic, _ := br.Topic("bench")
	if _, err := topic.Channel("c"); err != nil {
		b.Fatal(err)
	}
	c := dialBenchConn(b, br.TCPAddr())
	c.w.Write(protocol.AppendCommand(nil, "SUB", nil, "bench", "c"))
	c.w.Flush()
	if ft, data := c.readFrame(b); ft != protocol.FrameTypeResponse || string(data) != "OK" {
		b.Fatalf("SUB reply %d %q", ft, data)
	}
	bodies := benchBodies(200, 100)
	b.ReportAllocs()
	b.SetBytes(100)
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i += len(bodies) {
			n := min(len(bodies), b.N-i)
			if err := topic.Publish(bodies[:n], 0); err != nil {
				return
			}
		}
	}()
	c.w.Write(protocol.AppendCommand(nil, "RDY", nil, "2500"))
	c.w.Flush()
	fin := []byte("FIN 0000000000000000\n")
	deadline := time.Now().Add(5 * time.Minute)
	for got := 0; got < b.N; {
		ft, data := c.readFrame(b)
		if ft != protocol.FrameTypeMessage {
			continue
		}
		got++
		copy(fin[4:20], data[10:26])
		c.w.Write(fin)
		if c.r.Buffered() == 0 {
			c.w.Flush()
		}
		if time.Now().After(deadline) {
			b.Fatal("pump benchmark exceeded its time bound")
		}
	}
	c.w.Flush()
}

func benchReadFull(r *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
