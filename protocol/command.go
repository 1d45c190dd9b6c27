package protocol

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
)

// Command is one V2 command line split into its name and parameters. The
// slices alias the reader's buffer and are valid only until its next read.
type Command struct {
	Name   []byte
	Params [][]byte
}

// ErrLineTooLong is returned when a command line does not fit the reader's
// buffer; the connection cannot be resynchronised after it.
var ErrLineTooLong = errors.New("command line too long")

// ReadCommand reads one command line ending in "\n" (a trailing "\r" is
// dropped) and splits it on single spaces. params is reused for the result's
// Params to avoid an allocation per command. Input may arrive split across
// any number of reads; bufio.Reader reassembles it.
func ReadCommand(r *bufio.Reader, params [][]byte) (Command, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return Command{}, ErrLineTooLong
		}
		return Command{}, err
	}
	return ParseCommandLine(line, params), nil
}

// ParseCommandLine splits one line, with or without its "\n", into a Command.
func ParseCommandLine(line []byte, params [][]byte) Command {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	params = params[:0]
	name := line
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		name = line[:i]
		rest := line[i+1:]
		for {
			j := bytes.IndexByte(rest, ' ')
			if j < 0 {
				params = append(params, rest)
				break
			}
			params = append(params, rest[:j])
			rest = rest[j+1:]
		}
	}
	return Command{Name: name, Params: params}
}

// ReadSize reads a 4-byte big-endian size prefix.
func ReadSize(r *bufio.Reader) (int32, error) {
	b, err := r.Peek(4)
	if err != nil {
		return 0, err
	}
	n := int32(binary.BigEndian.Uint32(b))
	_, _ = r.Discard(4)
	return n, nil
}

// AppendCommand appends a command line with params and, when body is not
// nil, its size-prefixed body: the client side of the protocol, used by
// tests, tools and the fuzz seeds.
func AppendCommand(dst []byte, name string, body []byte, params ...string) []byte {
	dst = append(dst, name...)
	for _, p := range params {
		dst = append(dst, ' ')
		dst = append(dst, p...)
	}
	dst = append(dst, '\n')
	if body != nil {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
		dst = append(dst, body...)
	}
	return dst
}
