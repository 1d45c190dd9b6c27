package protocol_test

import (
	"bytes"
	"encoding/binary"
	"testing"

	"wren/protocol"
)

// mpubBody builds an MPUB body from a count and raw size/body pairs so that
// malformed bodies can be written as plainly as valid ones.
func mpubBody(count int32, parts ...any) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(count))
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			b = binary.BigEndian.AppendUint32(b, uint32(int32(v)))
		case string:
			b = append(b, v...)
		}
	}
	return b
}

func TestParseMPUB(t *testing.T) {
	const maxMsgSize, maxBodySize = 10, 100 // MaxMPUBCount(100) == 19
	nineteen := make([][]byte, 19)
	for i := range nineteen {
		nineteen[i] = []byte{byte('a' + i)}
	}
	tests := []struct {
		name     string
		body     []byte
		want     [][]byte
		wantCode string
		wantDesc string
	}{
		{name: "two", body: mpubBody(2, 1, "a", 2, "bc"), want: [][]byte{[]byte("a"), []byte("bc")}},
		{name: "max size", body: mpubBody(1, 10, "0123456789"), want: [][]byte{[]byte("0123456789")}},
		{name: "max count", body: protocol.AppendMPUBBody(nil, nineteen), want: nineteen},
		{name: "empty", body: nil, wantCode: "E_BAD_BODY", wantDesc: "MPUB failed to read message count"},
		{name: "short count", body: []byte{0, 0, 1}, wantCode: "E_BAD_BODY", wantDesc: "MPUB failed to read message count"},
		{name: "count 0", body: mpubBody(0), wantCode: "E_BAD_BODY", wantDesc: "MPUB invalid message count 0"},
		{name: "count negative", body: mpubBody(-1, 1, "a"), wantCode: "E_BAD_BODY", wantDesc: "MPUB invalid message count -1"},
		{name: "count too large", body: mpubBody(20, 1, "a"), wantCode: "E_BAD_BODY", wantDesc: "MPUB invalid message count 20"},
		{name: "size 0", body: mpubBody(1, 0), wantCode: "E_BAD_MESSAGE", wantDesc: "MPUB invalid message(0) body size 0"},
		{name: "size negative", body: mpubBody(2, 1, "a", -1, "b"), wantCode: "E_BAD_MESSAGE", wantDesc: "MPUB invalid message(1) body size -1"},
		{name: "size too big", body: mpubBody(1, 11, "01234567890"), wantCode: "E_BAD_MESSAGE", wantDesc: "MPUB message too big 11 > 10"},
		{name: "truncated size", body: mpubBody(2, 1, "a", "\x00\x00"), wantCode: "E_BAD_MESSAGE", wantDesc: "MPUB failed to read message(1) body size"},
		{name: "missing size", body: mpubBody(2, 1, "a"), wantCode: "E_BAD_MESSAGE", wantDesc: "MPUB failed to read message(1) body size"},
		{name: "truncated body", body: mpubBody(1, 5, "abc"), wantCode: "E_BAD_MESSAGE", wantDesc: "MPUB failed to read message body"},
		{name: "trailing bytes", body: mpubBody(1, 1, "a", "xyz"), wantCode: "E_BAD_BODY", wantDesc: "MPUB body has 3 bytes after its last message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, perr := protocol.ParseMPUB(tc.body, maxMsgSize, maxBodySize)
			if tc.wantCode != "" {
				if perr == nil {
					t.Fatalf("ParseMPUB = %q, want %s %s", got, tc.wantCode, tc.wantDesc)
				}
				if perr.Code != tc.wantCode || perr.Desc != tc.wantDesc || !perr.Fatal {
					t.Errorf("ParseMPUB error = %q fatal=%v, want %q", perr.Wire(), perr.Fatal, tc.wantCode+" "+tc.wantDesc)
				}
				if got != nil {
					t.Errorf("ParseMPUB returned %d bodies with its error", len(got))
				}
				return
			}
			if perr != nil {
				t.Fatalf("ParseMPUB: %v", perr)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("ParseMPUB = %q, want %q", got, tc.want)
			}
			for i := range got {
				if !bytes.Equal(got[i], tc.want[i]) {
					t.Errorf("body %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
			if again := protocol.AppendMPUBBody(nil, got); !bytes.Equal(again, tc.body) {
				t.Errorf("AppendMPUBBody(ParseMPUB(b)) = %q, want %q", again, tc.body)
			}
		})
	}
}

// Bodies alias the input; appending to one must not overwrite the next.
func TestParseMPUBBodiesAreCapped(t *testing.T) {
	body := mpubBody(2, 1, "a", 1, "b")
	msgs, perr := protocol.ParseMPUB(body, 10, 100)
	if perr != nil {
		t.Fatal(perr)
	}
	_ = append(msgs[0], 'X', 'X', 'X', 'X', 'X')
	if string(msgs[1]) != "b" {
		t.Errorf("appending to the first body changed the second to %q", msgs[1])
	}
}

func TestMaxMPUBCount(t *testing.T) {
	tests := []struct{ maxBodySize, want int64 }{
		{5 * 1024 * 1024, 1048575},
		{9, 1},
		{8, 0},
		{100, 19},
	}
	for _, tc := range tests {
		if got := protocol.MaxMPUBCount(tc.maxBodySize); got != tc.want {
			t.Errorf("MaxMPUBCount(%d) = %d, want %d", tc.maxBodySize, got, tc.want)
		}
	}
}

func TestAppendMPUBBody(t *testing.T) {
	got := protocol.AppendMPUBBody([]byte("p"), [][]byte{[]byte("ab"), []byte("c")})
	want := "p\x00\x00\x00\x02\x00\x00\x00\x02ab\x00\x00\x00\x01c"
	if string(got) != want {
		t.Errorf("AppendMPUBBody = %q, want %q", got, want)
	}
}
