package protocol_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"wren/protocol"
)

// Each target below also has a committed corpus in testdata/fuzz/<name>.

// commandSeeds are real client streams, plus the edge cases of the line rules.
func commandSeeds() [][]byte {
	mpub := protocol.AppendMPUBBody(nil, [][]byte{[]byte("a"), []byte("bc")})
	return [][]byte{
		[]byte(commandStream),
		protocol.AppendCommand([]byte(protocol.MagicV2), "IDENTIFY", []byte(goNSQIdentify)),
		protocol.AppendCommand(nil, "PUB", []byte("hello"), "orders"),
		protocol.AppendCommand(nil, "MPUB", mpub, "orders"),
		protocol.AppendCommand(nil, "DPUB", []byte("later"), "orders", "1000"),
		protocol.AppendCommand(nil, "AUTH", []byte("secret")),
		[]byte("RDY \nRDY  1\nFIN abc \n"),
		[]byte("NOP\r\r\nSUB a\tb c\r\n"),
		[]byte(strings.Repeat("A", 70) + "\nNOP\n"),
		[]byte("PUB t\n\xff\xff\xff\xff"),
		[]byte("SUB orders"),
	}
}

// bodyCommands are followed by a size-prefixed body.
var bodyCommands = map[string]bool{"PUB": true, "MPUB": true, "DPUB": true, "IDENTIFY": true, "AUTH": true}

const fuzzMaxBody = 1024

var errFuzzBodySize = errors.New("body size out of range")

type commandEvent struct {
	name    string
	params  []string
	hasBody bool
	body    string
}

func (e commandEvent) equal(o commandEvent) bool {
	if e.name != o.name || e.hasBody != o.hasBody || e.body != o.body || len(e.params) != len(o.params) {
		return false
	}
	for i := range e.params {
		if e.params[i] != o.params[i] {
			return false
		}
	}
	return true
}

// readCommandEvents reads the stream the way the broker does: a line, then
// for commands that carry one, a size and a body.
func readCommandEvents(r *bufio.Reader) ([]commandEvent, error) {
	var events []commandEvent
	params := make([][]byte, 0, 4)
	for {
		cmd, err := protocol.ReadCommand(r, params)
		if err != nil {
			return events, err
		}
		ev := commandEvent{name: string(cmd.Name)}
		for _, p := range cmd.Params {
			ev.params = append(ev.params, string(p))
		}
		if bodyCommands[ev.name] {
			size, err := protocol.ReadSize(r)
			if err != nil {
				return append(events, ev), err
			}
			if size < 0 || size > fuzzMaxBody {
				return append(events, ev), errFuzzBodySize
			}
			body := make([]byte, size)
			if _, err := io.ReadFull(r, body); err != nil {
				return append(events, ev), err
			}
			ev.hasBody, ev.body = true, string(body)
		}
		events = append(events, ev)
	}
}

// encodeCommandLine is the client's side of a command line. Only one "\r" is
// stripped before the "\n", so a line whose last field ends in "\r" must be
// sent with "\r\n" to keep it.
func encodeCommandLine(ev commandEvent) []byte {
	fields := append([]string{ev.name}, ev.params...)
	line := []byte(strings.Join(fields, " "))
	if strings.HasSuffix(fields[len(fields)-1], "\r") {
		line = append(line, '\r')
	}
	return append(line, '\n')
}

func FuzzReadCommand(f *testing.F) {
	for _, seed := range commandSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		whole, wholeErr := readCommandEvents(bufio.NewReaderSize(bytes.NewReader(data), 64))
		split, splitErr := readCommandEvents(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(data)), 64))
		if wholeErr != splitErr {
			t.Fatalf("error reading whole = %v, one byte at a time = %v", wholeErr, splitErr)
		}
		if len(whole) != len(split) {
			t.Fatalf("%d commands reading whole, %d one byte at a time", len(whole), len(split))
		}
		for i := range whole {
			if !whole[i].equal(split[i]) {
				t.Fatalf("command %d: %+v reading whole, %+v one byte at a time", i, whole[i], split[i])
			}
		}

		for _, ev := range whole {
			for _, field := range append([]string{ev.name}, ev.params...) {
				if strings.ContainsAny(field, " \n") {
					t.Fatalf("field %q of %+v holds a separator", field, ev)
				}
			}
			line := encodeCommandLine(ev)
			again := protocol.ParseCommandLine(line, nil)
			got := commandEvent{name: string(again.Name), hasBody: ev.hasBody, body: ev.body}
			for _, p := range again.Params {
				got.params = append(got.params, string(p))
			}
			if !got.equal(ev) {
				t.Fatalf("re-encoded %q parses to %+v, want %+v", line, got, ev)
			}
			read, err := protocol.ReadCommand(bufio.NewReaderSize(bytes.NewReader(line), len(line)+16), nil)
			if err != nil || string(read.Name) != ev.name || len(read.Params) != len(ev.params) {
				t.Fatalf("ReadCommand of re-encoded %q = %q %q %v", line, read.Name, read.Params, err)
			}
		}
	})
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add(protocol.AppendMessage(nil, &protocol.Message{ID: messageID("05d4a7b2c8e00000"), Timestamp: 1700000000123456789, Attempts: 1, Body: []byte("hello")}))
	f.Add(protocol.AppendMessage(nil, &protocol.Message{ID: messageID("0123456789abcdef")}))
	f.Add([]byte{})
	f.Add(make([]byte, protocol.MessageHeaderSize-1))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := protocol.DecodeMessage(data)
		if len(data) < protocol.MessageHeaderSize {
			if !errors.Is(err, protocol.ErrShortMessage) {
				t.Fatalf("DecodeMessage of %d bytes: %v, want ErrShortMessage", len(data), err)
			}
			return
		}
		if err != nil {
			t.Fatalf("DecodeMessage of %d bytes: %v", len(data), err)
		}
		if got := protocol.AppendMessage(nil, &m); !bytes.Equal(got, data) {
			t.Fatalf("AppendMessage(DecodeMessage(b)) = %q, want %q", got, data)
		}
		if m.EncodedSize() != len(data) {
			t.Fatalf("EncodedSize = %d, want %d", m.EncodedSize(), len(data))
		}
		frame := protocol.AppendMessageFrame(nil, &m)
		frameType, body, err := protocol.ReadFrame(bytes.NewReader(frame), len(frame))
		if err != nil || frameType != protocol.FrameTypeMessage || !bytes.Equal(body, data) {
			t.Fatalf("ReadFrame(AppendMessageFrame) = %d %q %v", frameType, body, err)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var stream []byte
	stream = protocol.AppendFrame(stream, protocol.FrameTypeResponse, protocol.ResponseOK)
	stream = protocol.AppendFrame(stream, protocol.FrameTypeResponse, protocol.ResponseHeartbeat)
	stream = protocol.AppendErrorFrame(stream, protocol.NewError(protocol.CodeInvalid, "invalid command FOO"))
	stream = protocol.AppendMessageFrame(stream, &protocol.Message{ID: messageID("0123456789abcdef"), Timestamp: 1, Attempts: 1, Body: []byte("hello")})
	f.Add(stream, uint16(1024))
	f.Add(stream, uint16(10))
	f.Add([]byte("\x00\x00\x00\x03\x00\x00\x00\x00"), uint16(1024))
	f.Add([]byte("\xff\xff\xff\xff\x00\x00\x00\x00"), uint16(65535))
	f.Fuzz(func(t *testing.T, data []byte, maxSize uint16) {
		r := bytes.NewReader(data)
		for {
			start := len(data) - r.Len()
			frameType, body, err := protocol.ReadFrame(r, int(maxSize))
			if err != nil {
				if rest := data[start:]; len(rest) >= 4 {
					size := int64(uint32(rest[0])<<24 | uint32(rest[1])<<16 | uint32(rest[2])<<8 | uint32(rest[3]))
					if size >= 4 && size > int64(maxSize) && !errors.Is(err, protocol.ErrFrameTooLarge) {
						t.Fatalf("size %d > %d: %v, want ErrFrameTooLarge", size, maxSize, err)
					}
				}
				return
			}
			if cap(body)+4 > int(maxSize) {
				t.Fatalf("ReadFrame allocated %d bytes with max %d", cap(body), maxSize)
			}
			end := len(data) - r.Len()
			if again := protocol.AppendFrame(nil, frameType, body); !bytes.Equal(again, data[start:end]) {
				t.Fatalf("AppendFrame(ReadFrame) = %q, want %q", again, data[start:end])
			}
		}
	})
}

func FuzzIdentify(f *testing.F) {
	f.Add([]byte(goNSQIdentify))
	f.Add([]byte(`{"feature_negotiation":true,"snappy":true,"deflate":true}`))
	f.Add([]byte(`{"feature_negotiation":true,"deflate":true,"deflate_level":9,"tls_v1":true}`))
	f.Add([]byte(`{"heartbeat_interval":-1,"output_buffer_size":-1,"output_buffer_timeout":-1,"msg_timeout":1000,"sample_rate":99}`))
	f.Add([]byte(`{"heartbeat_interval":100}`))
	f.Add([]byte(`{`))
	limitSets := []protocol.IdentifyLimits{nsqdLimits(), nsqdLimits()}
	limitSets[1].TLSEnabled = true
	limitSets[1].MaxDeflateLevel = 9
	limitSets[1].SnappyEnabled = false
	f.Fuzz(func(t *testing.T, body []byte) {
		d, perr := protocol.ParseIdentify(body)
		if perr != nil {
			if perr.Wire() != "E_BAD_BODY IDENTIFY failed to decode JSON body" || !perr.Fatal {
				t.Fatalf("ParseIdentify error = %q", perr.Wire())
			}
			return
		}
		for _, l := range limitSets {
			s, perr := d.Settings(l)
			if perr != nil {
				identifyFailed := perr.Code == protocol.CodeIdentifyFailed && d.FeatureNegotiation && d.Deflate && d.Snappy
				badBody := perr.Code == protocol.CodeBadBody && strings.HasPrefix(perr.Desc, "IDENTIFY ")
				if !identifyFailed && !badBody || !perr.Fatal {
					t.Fatalf("Settings(%+v) error = %q", d, perr.Wire())
				}
				continue
			}
			checkSettingsWithinLimits(t, d, s, l)
		}
	})
}

func checkSettingsWithinLimits(t *testing.T, d protocol.IdentifyData, s protocol.ClientSettings, l protocol.IdentifyLimits) {
	t.Helper()
	within := func(v, lo, hi time.Duration) bool { return v >= lo && v <= hi }
	if !(s.HeartbeatInterval == 0 || s.HeartbeatInterval == l.DefaultHeartbeatInterval || within(s.HeartbeatInterval, time.Second, l.MaxHeartbeatInterval)) {
		t.Errorf("heartbeat_interval %d gave %v", d.HeartbeatInterval, s.HeartbeatInterval)
	}
	if !(s.OutputBufferSize == 0 || s.OutputBufferSize == l.DefaultOutputBufferSize || s.OutputBufferSize >= 64 && s.OutputBufferSize <= l.MaxOutputBufferSize) {
		t.Errorf("output_buffer_size %d gave %d", d.OutputBufferSize, s.OutputBufferSize)
	}
	if !(s.OutputBufferTimeout == 0 || s.OutputBufferTimeout == l.DefaultOutputBufferTimeout || within(s.OutputBufferTimeout, l.MinOutputBufferTimeout, l.MaxOutputBufferTimeout)) {
		t.Errorf("output_buffer_timeout %d gave %v", d.OutputBufferTimeout, s.OutputBufferTimeout)
	}
	if !(s.MsgTimeout == l.DefaultMsgTimeout || within(s.MsgTimeout, time.Second, l.MaxMsgTimeout)) {
		t.Errorf("msg_timeout %d gave %v", d.MsgTimeout, s.MsgTimeout)
	}
	if s.SampleRate != d.SampleRate || s.SampleRate < 0 || s.SampleRate > 99 {
		t.Errorf("sample_rate %d gave %d", d.SampleRate, s.SampleRate)
	}
	ms := time.Millisecond
	if d.HeartbeatInterval > 0 && s.HeartbeatInterval != time.Duration(d.HeartbeatInterval)*ms ||
		d.OutputBufferTimeout > 0 && s.OutputBufferTimeout != time.Duration(d.OutputBufferTimeout)*ms ||
		d.MsgTimeout > 0 && s.MsgTimeout != time.Duration(d.MsgTimeout)*ms ||
		d.OutputBufferSize > 0 && s.OutputBufferSize != d.OutputBufferSize {
		t.Errorf("settings %+v do not follow request %+v", s, d)
	}
	if !d.FeatureNegotiation {
		if s.TLS || s.Deflate || s.Snappy || s.DeflateLevel != 0 {
			t.Errorf("upgrades granted without feature_negotiation: %+v", s)
		}
		return
	}
	wantLevel := 6
	if s.Deflate && d.DeflateLevel > 0 {
		wantLevel = d.DeflateLevel
	}
	if s.DeflateLevel != min(wantLevel, l.MaxDeflateLevel) || s.DeflateLevel < 1 || s.DeflateLevel > l.MaxDeflateLevel {
		t.Errorf("deflate_level %d gave %d with max %d", d.DeflateLevel, s.DeflateLevel, l.MaxDeflateLevel)
	}
	if s.Deflate && s.Snappy {
		t.Errorf("both deflate and snappy granted: %+v", s)
	}
	if s.TLS != (d.TLSv1 && l.TLSEnabled) || s.Deflate != (d.Deflate && l.DeflateEnabled) || s.Snappy != (d.Snappy && l.SnappyEnabled) {
		t.Errorf("settings %+v do not follow request %+v under limits %+v", s, d, l)
	}
}

func FuzzParseMPUB(f *testing.F) {
	const maxMsgSize, maxBodySize = 64, 4096
	f.Add(protocol.AppendMPUBBody(nil, [][]byte{[]byte("a"), []byte("bc")}))
	f.Add(protocol.AppendMPUBBody(nil, [][]byte{bytes.Repeat([]byte("x"), maxMsgSize)}))
	f.Add(mpubBody(0))
	f.Add(mpubBody(2, 1, "a", "\x00\x00"))
	f.Add(mpubBody(1, 5, "abc"))
	f.Add(mpubBody(1, 1, "a", "xyz"))
	f.Add(mpubBody(1, -1))
	f.Fuzz(func(t *testing.T, body []byte) {
		msgs, perr := protocol.ParseMPUB(body, maxMsgSize, maxBodySize)
		if perr != nil {
			if perr.Code != protocol.CodeBadBody && perr.Code != protocol.CodeBadMessage || !perr.Fatal || msgs != nil {
				t.Fatalf("ParseMPUB error = %q fatal=%v with %d bodies", perr.Wire(), perr.Fatal, len(msgs))
			}
			return
		}
		if len(msgs) < 1 || int64(len(msgs)) > protocol.MaxMPUBCount(maxBodySize) {
			t.Fatalf("ParseMPUB returned %d bodies", len(msgs))
		}
		for i, m := range msgs {
			if len(m) < 1 || len(m) > maxMsgSize || cap(m) != len(m) {
				t.Fatalf("body %d has len %d cap %d", i, len(m), cap(m))
			}
		}
		if again := protocol.AppendMPUBBody(nil, msgs); !bytes.Equal(again, body) {
			t.Fatalf("AppendMPUBBody(ParseMPUB(b)) = %q, want %q", again, body)
		}
	})
}

// FuzzMPUBScanner feeds an MPUB body to the scanner from a fuzzed first
// read onwards, as the broker does for clients whose declared size is
// short: it asks for no more than the next field needs, every body it
// calls complete parses, and its errors are the MPUB ones.
func FuzzMPUBScanner(f *testing.F) {
	const maxMsgSize, maxBodySize = 64, 4096
	f.Add(protocol.AppendMPUBBody(nil, [][]byte{[]byte("foo"), []byte("bar"), []byte("baz")}), uint16(9))
	f.Add(protocol.AppendMPUBBody(nil, [][]byte{[]byte("a")}), uint16(0))
	f.Add(mpubBody(2, 1, "a", "\x00\x00"), uint16(3))
	f.Add(mpubBody(1, -1), uint16(8))
	f.Fuzz(func(t *testing.T, data []byte, first uint16) {
		body := data[:min(int(first), len(data))]
		rest := data[len(body):]
		var scan protocol.MPUBScanner
		extended := false
		for {
			need, perr := scan.Need(body, maxMsgSize, maxBodySize)
			if perr != nil {
				if perr.Code != protocol.CodeBadBody && perr.Code != protocol.CodeBadMessage || !perr.Fatal {
					t.Fatalf("Need error = %q fatal=%v", perr.Wire(), perr.Fatal)
				}
				return
			}
			if need < 0 {
				t.Fatalf("Need = %d", need)
			}
			if need == 0 {
				break
			}
			if need > len(rest) {
				return // the input ends before the body does
			}
			body, rest = append(body, rest[:need]...), rest[need:]
			extended = true
		}
		msgs, perr := protocol.ParseMPUB(body, maxMsgSize, maxBodySize)
		if perr != nil {
			// Only a first read that ran past the body leaves anything over.
			if perr.Code != protocol.CodeBadBody || extended {
				t.Fatalf("ParseMPUB of a body the scanner completed: %q", perr.Wire())
			}
			return
		}
		if again := protocol.AppendMPUBBody(nil, msgs); !bytes.Equal(again, body) {
			t.Fatalf("scanned body %q parses to %d messages that encode to %q", body, len(msgs), again)
		}
	})
}
