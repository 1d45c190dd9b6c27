package protocol_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"wren/protocol"
)

func TestParseCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		line       string
		wantName   string
		wantParams []string
	}{
		{"bare", "NOP\n", "NOP", nil},
		{"crlf", "NOP\r\n", "NOP", nil},
		{"no newline", "NOP", "NOP", nil},
		{"params", "SUB topic channel\n", "SUB", []string{"topic", "channel"}},
		{"params crlf", "SUB topic channel\r\n", "SUB", []string{"topic", "channel"}},
		{"one empty param", "RDY \n", "RDY", []string{""}},
		{"double space", "RDY  5\n", "RDY", []string{"", "5"}},
		{"trailing space", "FIN abc \n", "FIN", []string{"abc", ""}},
		{"leading space", " NOP\n", "", []string{"NOP"}},
		{"empty line", "\n", "", nil},
		{"crlf only", "\r\n", "", nil},
		{"only one cr stripped", "NOP\r\r\n", "NOP\r", nil},
		{"cr inside", "PUB a\rb\n", "PUB", []string{"a\rb"}},
		{"tab is not a separator", "SUB a\tb\n", "SUB", []string{"a\tb"}},
		{"REQ", "REQ 0123456789abcdef 1000\n", "REQ", []string{"0123456789abcdef", "1000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := protocol.ParseCommandLine([]byte(tc.line), nil)
			checkCommand(t, cmd, tc.wantName, tc.wantParams)
		})
	}
}

func checkCommand(t *testing.T, cmd protocol.Command, wantName string, wantParams []string) {
	t.Helper()
	var params []string
	for _, p := range cmd.Params {
		params = append(params, string(p))
	}
	if string(cmd.Name) != wantName || !slices.Equal(params, wantParams) {
		t.Errorf("command = %q %q, want %q %q", cmd.Name, params, wantName, wantParams)
	}
}

func TestParseCommandLineReusesParams(t *testing.T) {
	line := []byte("SUB topic channel\n")
	params := make([][]byte, 0, 4)
	allocs := testing.AllocsPerRun(100, func() {
		cmd := protocol.ParseCommandLine(line, params)
		if len(cmd.Params) != 2 {
			t.Fatalf("params = %q", cmd.Params)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseCommandLine with a reused params slice made %v allocations", allocs)
	}
}

// commandStream is what a consumer sends after the magic, without bodies.
const commandStream = "SUB orders archive\n" +
	"RDY 100\r\n" +
	"FIN 0123456789abcdef\n" +
	"REQ 0123456789abcdef 1000\n" +
	"TOUCH 0123456789abcdef\n" +
	"RDY \n" +
	"\n" +
	"NOP\n" +
	"CLS\n"

type parsedCommand struct {
	name   string
	params []string
}

func readCommands(t *testing.T, r *bufio.Reader) ([]parsedCommand, error) {
	t.Helper()
	var out []parsedCommand
	params := make([][]byte, 0, 4)
	for {
		cmd, err := protocol.ReadCommand(r, params)
		if err != nil {
			return out, err
		}
		pc := parsedCommand{name: string(cmd.Name)}
		for _, p := range cmd.Params {
			pc.params = append(pc.params, string(p))
		}
		out = append(out, pc)
	}
}

func TestReadCommandSplitReads(t *testing.T) {
	whole, err := readCommands(t, bufio.NewReader(strings.NewReader(commandStream)))
	if err != io.EOF {
		t.Fatalf("reading whole: %v, want io.EOF", err)
	}
	if len(whole) != 9 || whole[0].name != "SUB" || whole[5].name != "RDY" || !slices.Equal(whole[5].params, []string{""}) {
		t.Fatalf("reading whole = %q", whole)
	}
	readers := []struct {
		name string
		r    io.Reader
	}{
		{"one byte", iotest.OneByteReader(strings.NewReader(commandStream))},
		{"half", iotest.HalfReader(strings.NewReader(commandStream))},
		{"data with EOF", iotest.DataErrReader(strings.NewReader(commandStream))},
	}
	for _, tc := range readers {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readCommands(t, bufio.NewReaderSize(tc.r, 64))
			if err != io.EOF {
				t.Fatalf("error = %v, want io.EOF", err)
			}
			if !slices.EqualFunc(got, whole, func(a, b parsedCommand) bool {
				return a.name == b.name && slices.Equal(a.params, b.params)
			}) {
				t.Errorf("commands = %q, want %q", got, whole)
			}
		})
	}
}

func TestReadCommandPartialLine(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("NOP\nSUB a"))
	if _, err := protocol.ReadCommand(r, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.ReadCommand(r, nil); !errors.Is(err, io.EOF) {
		t.Errorf("a line cut off by EOF: %v, want io.EOF", err)
	}
}

func TestReadCommandLineTooLong(t *testing.T) {
	const bufferSize = 16
	tests := []struct {
		name    string
		input   string
		wantErr error
	}{
		{"fits exactly", strings.Repeat("A", bufferSize-1) + "\n", nil},
		{"one byte over", strings.Repeat("A", bufferSize) + "\n", protocol.ErrLineTooLong},
		{"no newline", strings.Repeat("A", 100), protocol.ErrLineTooLong},
	}
	for _, tc := range tests {
		for _, split := range []bool{false, true} {
			name := tc.name
			var src io.Reader = strings.NewReader(tc.input)
			if split {
				name += "/one byte"
				src = iotest.OneByteReader(src)
			}
			t.Run(name, func(t *testing.T) {
				_, err := protocol.ReadCommand(bufio.NewReaderSize(src, bufferSize), nil)
				if err != tc.wantErr {
					t.Errorf("ReadCommand = %v, want %v", err, tc.wantErr)
				}
			})
		}
	}
}

func TestReadSize(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    int32
		wantErr bool
	}{
		{name: "small", input: "\x00\x00\x00\x05", want: 5},
		{name: "zero", input: "\x00\x00\x00\x00", want: 0},
		{name: "max", input: "\x7f\xff\xff\xff", want: 1<<31 - 1},
		{name: "negative", input: "\xff\xff\xff\xff", want: -1},
		{name: "empty", input: "", wantErr: true},
		{name: "short", input: "\x00\x00\x01", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(iotest.OneByteReader(strings.NewReader(tc.input + "rest")))
			if tc.wantErr {
				r = bufio.NewReader(strings.NewReader(tc.input))
			}
			got, err := protocol.ReadSize(r)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ReadSize = %d, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ReadSize = %d, %v; want %d", got, err, tc.want)
			}
			if rest, _ := io.ReadAll(r); string(rest) != "rest" {
				t.Errorf("ReadSize consumed more than 4 bytes: %q left", rest)
			}
		})
	}
}

func TestAppendCommand(t *testing.T) {
	tests := []struct {
		name   string
		cmd    string
		body   []byte
		params []string
		want   string
	}{
		{"no params", "NOP", nil, nil, "NOP\n"},
		{"params", "SUB", nil, []string{"t", "c"}, "SUB t c\n"},
		{"empty param", "RDY", nil, []string{""}, "RDY \n"},
		{"body", "PUB", []byte("hi"), []string{"topic"}, "PUB topic\n\x00\x00\x00\x02hi"},
		{"empty body", "PUB", []byte{}, []string{"topic"}, "PUB topic\n\x00\x00\x00\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := protocol.AppendCommand(nil, tc.cmd, tc.body, tc.params...); string(got) != tc.want {
				t.Errorf("AppendCommand = %q, want %q", got, tc.want)
			}
		})
	}
}

// A client's PUB, read the way the broker reads it, byte by byte.
func TestReadCommandThenBody(t *testing.T) {
	wire := protocol.AppendCommand(nil, "PUB", []byte("hello"), "orders")
	wire = protocol.AppendCommand(wire, "NOP", nil)
	r := bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(wire)), 16)
	cmd, err := protocol.ReadCommand(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkCommand(t, cmd, "PUB", []string{"orders"})
	size, err := protocol.ReadSize(r)
	if err != nil || size != 5 {
		t.Fatalf("ReadSize = %d, %v", size, err)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil || string(body) != "hello" {
		t.Fatalf("body = %q, %v", body, err)
	}
	cmd, err = protocol.ReadCommand(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkCommand(t, cmd, "NOP", nil)
}
