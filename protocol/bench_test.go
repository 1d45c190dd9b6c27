package protocol_test

import (
	"bufio"
	"bytes"
	"io"
	"testing"
	"time"

	"wren/protocol"
)

func BenchmarkAppendMessageFrame(b *testing.B) {
	m := &protocol.Message{
		ID:        messageID("05d4a7b2c8e00000"),
		Timestamp: time.Now().UnixNano(),
		Attempts:  1,
		Body:      bytes.Repeat([]byte("x"), 200),
	}
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(protocol.FrameHeaderSize + m.EncodedSize()))
	b.ReportAllocs()
	for b.Loop() {
		buf = protocol.AppendMessageFrame(buf[:0], m)
	}
	if len(buf) != protocol.FrameHeaderSize+m.EncodedSize() {
		b.Fatalf("frame is %d bytes", len(buf))
	}
}

func BenchmarkReadCommand(b *testing.B) {
	var stream []byte
	for range 1000 {
		stream = protocol.AppendCommand(stream, "FIN", nil, "05d4a7b2c8e00000")
	}
	src := bytes.NewReader(stream)
	r := bufio.NewReader(src)
	params := make([][]byte, 0, 4)
	b.SetBytes(int64(len("FIN 05d4a7b2c8e00000\n")))
	b.ReportAllocs()
	for b.Loop() {
		cmd, err := protocol.ReadCommand(r, params)
		if err == io.EOF {
			src.Reset(stream)
			r.Reset(src)
			cmd, err = protocol.ReadCommand(r, params)
		}
		if err != nil || len(cmd.Params) != 1 {
			b.Fatalf("ReadCommand = %q %v", cmd.Name, err)
		}
	}
}

func BenchmarkParseMPUB(b *testing.B) {
	bodies := make([][]byte, 200)
	for i := range bodies {
		bodies[i] = bytes.Repeat([]byte{byte('a' + i%26)}, 100)
	}
	body := protocol.AppendMPUBBody(nil, bodies)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		msgs, perr := protocol.ParseMPUB(body, 1024*1024, 5*1024*1024)
		if perr != nil || len(msgs) != 200 {
			b.Fatalf("ParseMPUB = %d bodies, %v", len(msgs), perr)
		}
	}
}

func BenchmarkIDGenerator(b *testing.B) {
	g := protocol.NewIDGenerator(1)
	now := time.Now().UnixNano()
	var id protocol.MessageID
	b.ReportAllocs()
	for b.Loop() {
		id = g.Next(now)
		now += 100 // about ten thousand IDs a tick, so the sequence overflows too
	}
	if id[0] == 0 {
		b.Fatal("empty ID")
	}
}
