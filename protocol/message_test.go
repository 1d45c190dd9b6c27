package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"wren/protocol"
)

func messageID(s string) protocol.MessageID {
	var id protocol.MessageID
	copy(id[:], s)
	return id
}

func TestAppendMessageLayout(t *testing.T) {
	m := &protocol.Message{
		ID:        messageID("0123456789abcdef"),
		Timestamp: 0x0102030405060708,
		Attempts:  0x0a0b,
		Body:      []byte("hi"),
	}
	want := []byte("\x01\x02\x03\x04\x05\x06\x07\x08" + "\x0a\x0b" + "0123456789abcdef" + "hi")
	if got := protocol.AppendMessage(nil, m); !bytes.Equal(got, want) {
		t.Errorf("AppendMessage = %q, want %q", got, want)
	}
	if got := m.EncodedSize(); got != len(want) {
		t.Errorf("EncodedSize = %d, want %d", got, len(want))
	}
	// size = 4 (type) + 26 (header) + 2 (body) = 32
	wantFrame := append([]byte("\x00\x00\x00\x20\x00\x00\x00\x02"), want...)
	if got := protocol.AppendMessageFrame(nil, m); !bytes.Equal(got, wantFrame) {
		t.Errorf("AppendMessageFrame = %q, want %q", got, wantFrame)
	}
	if got := protocol.AppendMessageFrame([]byte("x"), m); !bytes.Equal(got, append([]byte("x"), wantFrame...)) {
		t.Errorf("AppendMessageFrame after a prefix = %q", got)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		msg  protocol.Message
	}{
		{"empty body", protocol.Message{ID: messageID("0000000000000000"), Body: []byte{}}},
		{"text", protocol.Message{ID: messageID("05d4a7b2c8e00000"), Timestamp: 1700000000123456789, Attempts: 1, Body: []byte("hello")}},
		{"binary body", protocol.Message{ID: messageID("ffffffffffffffff"), Timestamp: 42, Attempts: 3, Body: []byte{0, '\n', 0xff, 0}}},
		{"max attempts", protocol.Message{ID: messageID("0123456789abcdef"), Timestamp: 1, Attempts: 65535, Body: []byte("x")}},
		{"negative timestamp", protocol.Message{ID: messageID("0123456789abcdef"), Timestamp: -1, Body: []byte("x")}},
		{"large body", protocol.Message{ID: messageID("0123456789abcdef"), Timestamp: 9, Body: bytes.Repeat([]byte("ab"), 70000)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			encoded := protocol.AppendMessage(nil, &tc.msg)
			got, err := protocol.DecodeMessage(encoded)
			if err != nil {
				t.Fatalf("DecodeMessage: %v", err)
			}
			if got.ID != tc.msg.ID || got.Timestamp != tc.msg.Timestamp || got.Attempts != tc.msg.Attempts || !bytes.Equal(got.Body, tc.msg.Body) {
				t.Errorf("DecodeMessage = %+v, want %+v", got, tc.msg)
			}

			frame := protocol.AppendMessageFrame(nil, &tc.msg)
			frameType, data, err := protocol.ReadFrame(bytes.NewReader(frame), len(frame))
			if err != nil || frameType != protocol.FrameTypeMessage || !bytes.Equal(data, encoded) {
				t.Errorf("ReadFrame of AppendMessageFrame = %d %v, data equal %v", frameType, err, bytes.Equal(data, encoded))
			}
		})
	}
}

func TestDecodeMessageShort(t *testing.T) {
	for _, n := range []int{0, 1, 10, protocol.MessageHeaderSize - 1} {
		_, err := protocol.DecodeMessage(make([]byte, n))
		if !errors.Is(err, protocol.ErrShortMessage) {
			t.Errorf("DecodeMessage of %d bytes: %v, want ErrShortMessage", n, err)
		}
	}
	m, err := protocol.DecodeMessage(make([]byte, protocol.MessageHeaderSize))
	if err != nil || len(m.Body) != 0 {
		t.Errorf("DecodeMessage of a bare header = %+v, %v", m, err)
	}
}

func TestDecodeMessageBodyAliasesInput(t *testing.T) {
	encoded := protocol.AppendMessage(nil, &protocol.Message{ID: messageID("0123456789abcdef"), Body: []byte("abc")})
	m, err := protocol.DecodeMessage(encoded)
	if err != nil {
		t.Fatal(err)
	}
	encoded[len(encoded)-1] = 'z'
	if string(m.Body) != "abz" {
		t.Errorf("Body = %q; it should alias the input", m.Body)
	}
}

func TestAppendMessageFrameDoesNotAllocate(t *testing.T) {
	m := &protocol.Message{ID: messageID("0123456789abcdef"), Body: bytes.Repeat([]byte("x"), 200)}
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		buf = protocol.AppendMessageFrame(buf[:0], m)
	})
	if allocs != 0 {
		t.Errorf("AppendMessageFrame into a buffer with room made %v allocations", allocs)
	}
}
