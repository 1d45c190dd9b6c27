package protocol_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"wren/protocol"
)

func TestAppendV1Response(t *testing.T) {
	got := protocol.AppendV1Response([]byte("x"), protocol.ResponseOK)
	if string(got) != "x\x00\x00\x00\x02OK" {
		t.Fatalf("AppendV1Response = %q", got)
	}
	if got := protocol.AppendV1Response(nil, nil); string(got) != "\x00\x00\x00\x00" {
		t.Fatalf("empty reply = %q", got)
	}
}

func TestAppendV1Error(t *testing.T) {
	tests := []struct {
		err  *protocol.Error
		want string
	}{
		{protocol.NewError(protocol.CodeBadProtocol, ""), "\x00\x00\x00\x0eE_BAD_PROTOCOL"},
		{protocol.NewError(protocol.CodeInvalid, "invalid command "), "\x00\x00\x00\x1aE_INVALID invalid command "},
		{protocol.NewError(protocol.CodeBadBody, "IDENTIFY missing fields"), "\x00\x00\x00\x22E_BAD_BODY IDENTIFY missing fields"},
	}
	for _, tt := range tests {
		got := protocol.AppendV1Error(nil, tt.err)
		if string(got) != tt.want {
			t.Errorf("AppendV1Error(%v) = %q, want %q", tt.err, got, tt.want)
		}
		if want := protocol.AppendV1Response(nil, []byte(tt.err.Wire())); !bytes.Equal(got, want) {
			t.Errorf("AppendV1Error(%v) = %q, differs from the reply framing %q", tt.err, got, want)
		}
		if !protocol.IsV1Error(got[4:]) {
			t.Errorf("IsV1Error(%q) = false", got[4:])
		}
	}
	if protocol.IsV1Error([]byte("OK")) || protocol.IsV1Error([]byte(`{"tcp_port":4160}`)) {
		t.Error("IsV1Error is true for a successful reply")
	}
}

func TestReadV1Command(t *testing.T) {
	tests := []struct {
		line       string
		wantName   string
		wantParams []string
	}{
		{"PING\n", "PING", nil},
		{"PING\r\n", "PING", nil},
		{" PING \t\r\n", "PING", nil},
		{"\u00a0PING\u2003\n", "PING", nil},
		{"\n", "", nil},
		{" \t \n", "", nil},
		{"REGISTER t c\n", "REGISTER", []string{"t", "c"}},
		{"REGISTER t \n", "REGISTER", []string{"t"}},
		{"REGISTER  t\n", "REGISTER", []string{"", "t"}},
		{"REGISTER t\tc\n", "REGISTER", []string{"t\tc"}},
		{"PING a b c d e\n", "PING", []string{"a", "b", "c", "d", "e"}},
	}
	for _, tt := range tests {
		for _, split := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tt.line)
			if split {
				src = iotest.OneByteReader(src)
			}
			cmd, err := protocol.ReadV1Command(bufio.NewReaderSize(src, 64), nil)
			if err != nil {
				t.Fatalf("ReadV1Command(%q): %v", tt.line, err)
			}
			if string(cmd.Name) != tt.wantName || !slices.Equal(strs(cmd.Params), tt.wantParams) {
				t.Errorf("ReadV1Command(%q) = %q %q, want %q %q", tt.line, cmd.Name, strs(cmd.Params), tt.wantName, tt.wantParams)
			}
		}
	}

	if _, err := protocol.ReadV1Command(bufio.NewReaderSize(strings.NewReader("PING"), 64), nil); err != io.EOF {
		t.Errorf("a line without its newline: %v, want io.EOF", err)
	}
	long := strings.Repeat("x", 100) + "\n"
	if _, err := protocol.ReadV1Command(bufio.NewReaderSize(strings.NewReader(long), 64), nil); !errors.Is(err, protocol.ErrLineTooLong) {
		t.Errorf("a line longer than the buffer: %v, want ErrLineTooLong", err)
	}
}

func strs(bs [][]byte) []string {
	var out []string
	for _, b := range bs {
		out = append(out, string(b))
	}
	return out
}

func TestReadV1BodySize(t *testing.T) {
	tests := []struct {
		prefix   uint32
		wantSize int32
		inRange  bool
	}{
		{1, 1, true},
		{1024, 1024, true},
		{1025, 1025, false},
		{0, 0, false},
		{0xffffffff, -1, false},
		{0x80000000, -1 << 31, false},
	}
	for _, tt := range tests {
		stream := binary.BigEndian.AppendUint32(nil, tt.prefix)
		stream = append(stream, "rest"...)
		r := bufio.NewReader(bytes.NewReader(stream))
		size, err := protocol.ReadV1BodySize(r, 1024)
		if size != tt.wantSize {
			t.Errorf("size %#x: got %d, want %d", tt.prefix, size, tt.wantSize)
		}
		if (err == nil) != tt.inRange || (err != nil && !errors.Is(err, protocol.ErrBodySizeOutOfRange)) {
			t.Errorf("size %#x: err %v, want in range %v", tt.prefix, err, tt.inRange)
		}
		if rest, _ := io.ReadAll(r); string(rest) != "rest" {
			t.Errorf("size %#x: left %q, want only the prefix consumed", tt.prefix, rest)
		}
	}
	if _, err := protocol.ReadV1BodySize(bufio.NewReader(strings.NewReader("\x00\x00")), 1024); err != io.EOF {
		t.Errorf("a short prefix: %v, want io.EOF", err)
	}
}

func TestReadV1Response(t *testing.T) {
	stream := protocol.AppendV1Response(nil, protocol.ResponseOK)
	stream = protocol.AppendV1Error(stream, protocol.NewError(protocol.CodeInvalid, "client must IDENTIFY"))
	r := iotest.OneByteReader(bytes.NewReader(stream))
	for _, want := range []string{"OK", "E_INVALID client must IDENTIFY"} {
		got, err := protocol.ReadV1Response(r, 64)
		if err != nil || string(got) != want {
			t.Fatalf("ReadV1Response = %q, %v, want %q", got, err, want)
		}
	}
	if _, err := protocol.ReadV1Response(r, 64); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	if _, err := protocol.ReadV1Response(strings.NewReader("\x00\x00\x01\x00"), 64); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Fatalf("a reply over the bound: %v, want ErrFrameTooLarge", err)
	}
	if _, err := protocol.ReadV1Response(strings.NewReader("\xff\xff\xff\xff"), 64); err == nil {
		t.Fatal("a negative size was accepted")
	}
}

const v1FuzzMaxBody = 1024

// v1Event is one command read from a V1 stream, with IDENTIFY's body.
type v1Event struct {
	name   string
	params []string
	body   string
}

func (e v1Event) equal(o v1Event) bool {
	return e.name == o.name && e.body == o.body && slices.Equal(e.params, o.params)
}

// readV1Events reads a V1 stream as the lookup does: a line, then for
// IDENTIFY a bounded size and the body. fatalf reports a broken invariant.
func readV1Events(r *bufio.Reader, fatalf func(string, ...any)) ([]v1Event, error) {
	var events []v1Event
	params := make([][]byte, 0, 4)
	for {
		cmd, err := protocol.ReadV1Command(r, params)
		if err != nil {
			return events, err
		}
		ev := v1Event{name: string(cmd.Name), params: strs(cmd.Params)}
		if ev.name == "IDENTIFY" {
			size, err := protocol.ReadV1BodySize(r, v1FuzzMaxBody)
			if err != nil {
				if errors.Is(err, protocol.ErrBodySizeOutOfRange) && size >= 1 && size <= v1FuzzMaxBody {
					fatalf("size %d within the bound refused: %v", size, err)
				}
				return append(events, ev), err
			}
			if size < 1 || size > v1FuzzMaxBody {
				fatalf("size %d outside [1, %d] accepted", size, v1FuzzMaxBody)
			}
			body := make([]byte, size)
			if _, err := io.ReadFull(r, body); err != nil {
				return append(events, ev), err
			}
			ev.body = string(body)
		}
		events = append(events, ev)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// FuzzReadV1Command feeds arbitrary bytes through the V1 reader: it must
// not panic, must read the same commands whether the input arrives whole
// or a byte at a time, must never accept a body size outside its bound,
// and must produce commands that read back the same once re-encoded.
func FuzzReadV1Command(f *testing.F) {
	identify := []byte(`{"broadcast_address":"b1","hostname":"b1.local","http_port":4151,"tcp_port":4150,"version":"1.3.0"}`)
	session := protocol.AppendCommand(nil, "IDENTIFY", identify)
	session = append(session, "REGISTER orders billing\nREGISTER events\nPING\nUNREGISTER orders billing\nUNREGISTER events\n"...)
	for _, seed := range [][]byte{
		session,
		[]byte("PING\r\n PING \t\n\u00a0PING\u2003\n"),
		[]byte("\n\nREGISTER  t\nREGISTER t \n"),
		[]byte("IDENTIFY\n\xff\xff\xff\xffPING\n"),
		[]byte("IDENTIFY\n\x00\x00\x00\x00PING\n"),
		[]byte("IDENTIFY\n\x00\x00\x04\x01{}"),
		[]byte("IDENTIFY\n\x00\x00"),
		[]byte(strings.Repeat("P", 70) + "\nPING\n"),
		[]byte("PING"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, wholeErr := readV1Events(bufio.NewReaderSize(bytes.NewReader(data), 64), t.Fatalf)
		split, splitErr := readV1Events(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 64), t.Fatalf)
		if errText(wholeErr) != errText(splitErr) {
			t.Fatalf("error reading whole = %v, one byte at a time = %v", wholeErr, splitErr)
		}
		if len(whole) != len(split) {
			t.Fatalf("%d commands reading whole, %d one byte at a time", len(whole), len(split))
		}
		for i := range whole {
			if !whole[i].equal(split[i]) {
				t.Fatalf("command %d: %+v reading whole, %+v one byte at a time", i, whole[i], split[i])
			}
			ev := whole[i]
			fields := append([]string{ev.name}, ev.params...)
			for _, field := range fields {
				if strings.ContainsAny(field, " \n") {
					t.Fatalf("field %q of %+v holds a separator", field, ev)
				}
			}
			line := strings.Join(fields, " ")
			if trimmed := strings.TrimSpace(line); trimmed != line {
				t.Fatalf("command %+v keeps white space at its ends", ev)
			}
			again, err := protocol.ReadV1Command(bufio.NewReaderSize(strings.NewReader(line+"\n"), len(line)+16), nil)
			if err != nil || !(v1Event{name: string(again.Name), params: strs(again.Params), body: ev.body}).equal(ev) {
				t.Fatalf("re-encoded %q reads as %q %q %v, want %+v", line, again.Name, strs(again.Params), err, ev)
			}
		}
	})
}
