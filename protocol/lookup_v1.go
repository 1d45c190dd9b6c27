package protocol

// The "  V1" lookup protocol, spoken by brokers to a lookup registry. It is
// a request/response protocol: each command line (IDENTIFY followed by a
// size-prefixed JSON body) gets exactly one reply, [int32 size][data].
// Unlike V2 there is no frame type, so an error differs from a reply only
// by its "E_CODE description" text.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// V1ResponseHeaderSize is the size prefix of every V1 reply.
const V1ResponseHeaderSize = 4

// AppendV1Response appends a V1 reply, [int32 len(data)][data], to dst.
func AppendV1Response(dst, data []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// AppendV1Error appends e's wire text framed as a V1 reply.
func AppendV1Error(dst []byte, e *Error) []byte {
	size := len(e.Code)
	if e.Desc != "" {
		size += 1 + len(e.Desc)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	dst = append(dst, e.Code...)
	if e.Desc != "" {
		dst = append(dst, ' ')
		dst = append(dst, e.Desc...)
	}
	return dst
}

// ReadV1Command reads one V1 command line. nsqlookupd trims all leading and
// trailing white space (Unicode included) from the line before splitting it
// on single spaces, so " PING\t\r\n" is PING and an empty line is a command
// with an empty name; this reader does the same. A line longer than r's
// buffer is ErrLineTooLong. params is reused as in ReadCommand, and the
// result aliases r's buffer until its next read.
func ReadV1Command(r *bufio.Reader, params [][]byte) (Command, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return Command{}, ErrLineTooLong
		}
		return Command{}, err
	}
	return ParseCommandLine(bytes.TrimSpace(line), params), nil
}

// ErrBodySizeOutOfRange is wrapped by the error ReadV1BodySize returns for a
// size below 1 or above its bound.
var ErrBodySizeOutOfRange = errors.New("body size out of range")

// ReadV1BodySize reads the 4-byte big-endian size that precedes IDENTIFY's
// body and checks that it lies in [1, maxSize], so that a caller allocating
// the body never allocates more than maxSize. nsqlookupd itself has no
// bound and panics on a negative size (0xffffffff). A size out of range is
// returned along with an error wrapping ErrBodySizeOutOfRange; only the
// prefix has been consumed then.
func ReadV1BodySize(r *bufio.Reader, maxSize int32) (int32, error) {
	size, err := ReadSize(r)
	if err != nil {
		return 0, err
	}
	if size <= 0 || size > maxSize {
		return size, fmt.Errorf("%w: %d not in [1, %d]", ErrBodySizeOutOfRange, size, maxSize)
	}
	return size, nil
}

// ReadV1Response reads one V1 reply as a broker does. maxSize bounds the
// declared size so a hostile lookup cannot make the reader allocate without
// limit.
func ReadV1Response(r io.Reader, maxSize int) ([]byte, error) {
	var hdr [V1ResponseHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	size := int64(int32(binary.BigEndian.Uint32(hdr[:])))
	if size < 0 {
		return nil, fmt.Errorf("negative response size %d", size)
	}
	if size > int64(maxSize) {
		return nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	return data, nil
}

// IsV1Error reports whether a V1 reply is an error: nsqlookupd's errors all
// begin with "E_", and no successful reply ("OK" or a JSON object) does.
func IsV1Error(data []byte) bool { return bytes.HasPrefix(data, []byte("E_")) }
