package protocol_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"wren/protocol"
)

func TestAppendFrameBytes(t *testing.T) {
	tests := []struct {
		name      string
		frameType int32
		data      []byte
		want      []byte
	}{
		{
			name:      "OK response",
			frameType: protocol.FrameTypeResponse,
			data:      protocol.ResponseOK,
			want:      []byte("\x00\x00\x00\x06\x00\x00\x00\x00OK"),
		},
		{
			name:      "heartbeat",
			frameType: protocol.FrameTypeResponse,
			data:      protocol.ResponseHeartbeat,
			want:      []byte("\x00\x00\x00\x0f\x00\x00\x00\x00_heartbeat_"),
		},
		{
			name:      "CLOSE_WAIT",
			frameType: protocol.FrameTypeResponse,
			data:      protocol.ResponseCloseWait,
			want:      []byte("\x00\x00\x00\x0e\x00\x00\x00\x00CLOSE_WAIT"),
		},
		{
			name:      "empty data",
			frameType: protocol.FrameTypeMessage,
			data:      nil,
			want:      []byte("\x00\x00\x00\x04\x00\x00\x00\x02"),
		},
		{
			name:      "error type",
			frameType: protocol.FrameTypeError,
			data:      []byte("E_INVALID"),
			want:      []byte("\x00\x00\x00\x0d\x00\x00\x00\x01E_INVALID"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := protocol.AppendFrame(nil, tc.frameType, tc.data); !bytes.Equal(got, tc.want) {
				t.Errorf("AppendFrame = %q, want %q", got, tc.want)
			}
			prefix := []byte("prefix")
			got := protocol.AppendFrame(prefix, tc.frameType, tc.data)
			if !bytes.Equal(got, append([]byte("prefix"), tc.want...)) {
				t.Errorf("AppendFrame after a prefix = %q", got)
			}
		})
	}
}

func TestAppendErrorFrameBytes(t *testing.T) {
	tests := []struct {
		name string
		err  *protocol.Error
		want []byte
	}{
		{
			name: "invalid command",
			err:  protocol.NewError(protocol.CodeInvalid, "invalid command FOO"),
			// 4 + len("E_INVALID invalid command FOO") = 33
			want: []byte("\x00\x00\x00\x21\x00\x00\x00\x01E_INVALID invalid command FOO"),
		},
		{
			name: "non-fatal",
			err:  protocol.NewError(protocol.CodeFinFailed, "FIN failed 0123456789abcdef"),
			want: []byte("\x00\x00\x00\x2c\x00\x00\x00\x01E_FIN_FAILED FIN failed 0123456789abcdef"),
		},
		{
			name: "cause not on the wire",
			err:  protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to decode JSON body").Wrap(io.EOF),
			want: []byte("\x00\x00\x00\x32\x00\x00\x00\x01E_BAD_BODY IDENTIFY failed to decode JSON body"),
		},
		{
			name: "code only",
			err:  protocol.NewError(protocol.CodeAuthFirst, ""),
			want: []byte("\x00\x00\x00\x10\x00\x00\x00\x01E_AUTH_FIRST"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := protocol.AppendErrorFrame(nil, tc.err)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("AppendErrorFrame = %q, want %q", got, tc.want)
			}
			if viaWire := protocol.AppendFrame(nil, protocol.FrameTypeError, []byte(tc.err.Wire())); !bytes.Equal(got, viaWire) {
				t.Errorf("AppendErrorFrame = %q, AppendFrame of Wire() = %q", got, viaWire)
			}
		})
	}
}

func TestReadFrameRoundTrip(t *testing.T) {
	msg := protocol.AppendMessage(nil, &protocol.Message{
		ID: protocol.MessageID([]byte("0123456789abcdef")), Timestamp: 1, Attempts: 1, Body: []byte("hello"),
	})
	tests := []struct {
		name      string
		frameType int32
		data      []byte
	}{
		{"OK", protocol.FrameTypeResponse, protocol.ResponseOK},
		{"empty", protocol.FrameTypeResponse, []byte{}},
		{"error", protocol.FrameTypeError, []byte("E_INVALID invalid command FOO")},
		{"message", protocol.FrameTypeMessage, msg},
		{"binary", 7, []byte{0, 0, 0, 0, 0xff, '\n'}},
		{"negative type", -1, []byte("x")},
	}
	var stream []byte
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := protocol.AppendFrame(nil, tc.frameType, tc.data)
			gotType, gotData, err := protocol.ReadFrame(bytes.NewReader(frame), len(frame))
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if gotType != tc.frameType || !bytes.Equal(gotData, tc.data) {
				t.Errorf("ReadFrame = %d %q, want %d %q", gotType, gotData, tc.frameType, tc.data)
			}
		})
		stream = protocol.AppendFrame(stream, tc.frameType, tc.data)
	}
	t.Run("stream", func(t *testing.T) {
		r := bytes.NewReader(stream)
		for _, tc := range tests {
			gotType, gotData, err := protocol.ReadFrame(r, 1024)
			if err != nil || gotType != tc.frameType || !bytes.Equal(gotData, tc.data) {
				t.Fatalf("frame %s: ReadFrame = %d %q %v", tc.name, gotType, gotData, err)
			}
		}
		if _, _, err := protocol.ReadFrame(r, 1024); err != io.EOF {
			t.Errorf("ReadFrame at the end = %v, want io.EOF", err)
		}
	})
}

func TestReadFrameRejects(t *testing.T) {
	tests := []struct {
		name        string
		input       []byte
		maxSize     int
		wantTooBig  bool
		wantErrIs   error
		wantAnyFail bool
	}{
		{name: "size 0", input: []byte("\x00\x00\x00\x00\x00\x00\x00\x00"), maxSize: 1024, wantAnyFail: true},
		{name: "size 1", input: []byte("\x00\x00\x00\x01\x00\x00\x00\x00"), maxSize: 1024, wantAnyFail: true},
		{name: "size 3", input: []byte("\x00\x00\x00\x03\x00\x00\x00\x00"), maxSize: 1024, wantAnyFail: true},
		{name: "above max", input: []byte("\x00\x00\x04\x01\x00\x00\x00\x00"), maxSize: 1024, wantTooBig: true},
		{name: "top bit set", input: []byte("\xff\xff\xff\xff\x00\x00\x00\x00"), maxSize: 1 << 20, wantTooBig: true},
		{name: "2GiB declared", input: []byte("\x80\x00\x00\x00"), maxSize: 1 << 20, wantTooBig: true},
		{name: "no input", input: nil, maxSize: 1024, wantErrIs: io.EOF},
		{name: "short size", input: []byte("\x00\x00"), maxSize: 1024, wantErrIs: io.ErrUnexpectedEOF},
		{name: "short type", input: []byte("\x00\x00\x00\x06\x00\x00"), maxSize: 1024, wantErrIs: io.ErrUnexpectedEOF},
		{name: "missing type", input: []byte("\x00\x00\x00\x06"), maxSize: 1024, wantErrIs: io.EOF},
		{name: "short data", input: []byte("\x00\x00\x00\x06\x00\x00\x00\x00O"), maxSize: 1024, wantErrIs: io.ErrUnexpectedEOF},
		{name: "missing data", input: []byte("\x00\x00\x00\x06\x00\x00\x00\x00"), maxSize: 1024, wantErrIs: io.EOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, data, err := protocol.ReadFrame(bytes.NewReader(tc.input), tc.maxSize)
			if err == nil {
				t.Fatalf("ReadFrame(%q) = %q, want an error", tc.input, data)
			}
			if got := errors.Is(err, protocol.ErrFrameTooLarge); got != tc.wantTooBig {
				t.Errorf("errors.Is(%v, ErrFrameTooLarge) = %v, want %v", err, got, tc.wantTooBig)
			}
			if tc.wantErrIs != nil && !errors.Is(err, tc.wantErrIs) {
				t.Errorf("ReadFrame error = %v, want %v", err, tc.wantErrIs)
			}
		})
	}
}

func TestReadFrameAtMaxSize(t *testing.T) {
	frame := protocol.AppendFrame(nil, protocol.FrameTypeResponse, []byte("abcd"))
	if _, _, err := protocol.ReadFrame(bytes.NewReader(frame), 8); err != nil {
		t.Errorf("a frame of size == max: %v", err)
	}
	if _, _, err := protocol.ReadFrame(bytes.NewReader(frame), 7); !errors.Is(err, protocol.ErrFrameTooLarge) {
		t.Errorf("a frame of size == max+1: %v, want ErrFrameTooLarge", err)
	}
}

// A hostile size prefix must be refused before the reader allocates for it.
func TestReadFrameDoesNotAllocateDeclaredSize(t *testing.T) {
	input := []byte("\x7f\xff\xff\xff\x00\x00\x00\x00")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		if _, _, err := protocol.ReadFrame(bytes.NewReader(input), 1024); !errors.Is(err, protocol.ErrFrameTooLarge) {
			t.Fatalf("ReadFrame = %v, want ErrFrameTooLarge", err)
		}
	}
	runtime.ReadMemStats(&after)
	// Only the error values allocate; the declared 2 GiB never is.
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 64*1024 {
		t.Errorf("10 refused frames allocated %d bytes", allocated)
	}
}
