package broker

import (
	"bytes"
	"testing"
	"time"

	"wren/protocol"
)

func TestDeferredFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	due := time.Now().Add(time.Hour).UnixNano()
	var msgs []*message
	for i, body := range []string{"a", "bb", "ccc"} {
		m := newMessage(protocol.MessageID{'0' + byte(i)}, int64(1000+i), []byte(body))
		m.Attempts = uint16(i + 1)
		m.due = due + int64(i)
		msgs = append(msgs, m)
	}
	if err := writeDeferredFile(dir, "t:c", msgs); err != nil {
		t.Fatal(err)
	}
	got, err := readDeferredFile(dir, "t:c")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("read %d messages, want %d", len(got), len(msgs))
	}
	for i, m := range got {
		w := msgs[i]
		if m.ID != w.ID || m.Timestamp != w.Timestamp || m.Attempts != w.Attempts || m.due != w.due || !bytes.Equal(m.Body, w.Body) {
			t.Errorf("message %d = %+v, want %+v", i, m.Message, w.Message)
		}
	}
	// Writing none removes the file.
	if err := writeDeferredFile(dir, "t:c", nil); err != nil {
		t.Fatal(err)
	}
	if got, err := readDeferredFile(dir, "t:c"); err != nil || got != nil {
		t.Fatalf("after writing none: %v, %v", got, err)
	}
}

func TestDeferredFileDamaged(t *testing.T) {
	m := newMessage(protocol.MessageID{'1'}, 1, []byte("body"))
	m.due = 42
	var buf bytes.Buffer
	buf.WriteString(deferredMagic)
	full := append([]byte(nil), buf.Bytes()...)
	rec := encodeDeferredForTest(m)
	full = append(full, rec...)
	full = append(full, rec...)
	cases := []struct {
		name    string
		data    []byte
		want    int
		wantErr bool
	}{
		{"whole", full, 2, false},
		{"truncated tail", full[:len(full)-3], 1, true},
		{"bad magic", append([]byte("NOTMAGIC!\n"), rec...), 0, true},
		{"empty", nil, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeDeferred(tc.data)
			if (err != nil) != tc.wantErr || len(got) != tc.want {
				t.Fatalf("got %d messages, err %v; want %d, error %v", len(got), err, tc.want, tc.wantErr)
			}
		})
	}
}

func encodeDeferredForTest(m *message) []byte { return appendDeferredRecord(nil, m) }

// FuzzDecodeDeferred: a damaged deferred file never panics, never returns
// a message it could not read whole, and what it returns re-encodes to a
// prefix of its input.
func FuzzDecodeDeferred(f *testing.F) {
	m := newMessage(protocol.MessageID{'a'}, 7, []byte("seed"))
	m.due = 99
	whole := appendDeferredRecord([]byte(deferredMagic), m)
	f.Add(whole)
	f.Add(whole[:len(whole)-1])
	f.Add([]byte(deferredMagic))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, _ := decodeDeferred(data)
		out := []byte(deferredMagic)
		for _, m := range msgs {
			out = appendDeferredRecord(out, m)
		}
		if len(msgs) > 0 && !bytes.HasPrefix(data, out) {
			t.Fatalf("decoded messages re-encode to %q, not a prefix of the input", out)
		}
	})
}
