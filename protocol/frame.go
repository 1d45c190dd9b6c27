package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types of the V2 protocol.
const (
	FrameTypeResponse int32 = 0
	FrameTypeError    int32 = 1
	FrameTypeMessage  int32 = 2
)

// MagicV2 opens every broker connection; MagicV1 every lookup connection.
const (
	MagicV2 = "  V2"
	MagicV1 = "  V1"
)

// Fixed response bodies.
var (
	ResponseOK        = []byte("OK")
	ResponseHeartbeat = []byte("_heartbeat_")
	ResponseCloseWait = []byte("CLOSE_WAIT")
)

// FrameHeaderSize is the size and type prefix of every V2 frame.
const FrameHeaderSize = 8

// AppendFrame appends a V2 frame, [int32 size][int32 type][data] with
// size = 4 + len(data), to dst.
func AppendFrame(dst []byte, frameType int32, data []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+len(data)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(frameType))
	return append(dst, data...)
}

// AppendErrorFrame appends an error frame carrying e's wire text.
func AppendErrorFrame(dst []byte, e *Error) []byte {
	size := len(e.Code)
	if e.Desc != "" {
		size += 1 + len(e.Desc)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+size))
	dst = binary.BigEndian.AppendUint32(dst, uint32(FrameTypeError))
	dst = append(dst, e.Code...)
	if e.Desc != "" {
		dst = append(dst, ' ')
		dst = append(dst, e.Desc...)
	}
	return dst
}

// ErrFrameTooLarge is returned by ReadFrame for a size above its limit.
var ErrFrameTooLarge = errors.New("frame too large")

// ReadFrame reads one V2 frame from r, as a client does. maxSize bounds the
// frame's declared size so a hostile peer cannot make the reader allocate
// without limit.
func ReadFrame(r io.Reader, maxSize int) (frameType int32, data []byte, err error) {
	var hdr [FrameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, nil, err
	}
	size := int64(binary.BigEndian.Uint32(hdr[:4]))
	if size < 4 {
		return 0, nil, fmt.Errorf("frame size %d below 4", size)
	}
	if size > int64(maxSize) {
		return 0, nil, fmt.Errorf("%w: %d > %d", ErrFrameTooLarge, size, maxSize)
	}
	if _, err := io.ReadFull(r, hdr[4:8]); err != nil {
		return 0, nil, err
	}
	frameType = int32(binary.BigEndian.Uint32(hdr[4:8]))
	data = make([]byte, size-4)
	if _, err := io.ReadFull(r, data); err != nil {
		return 0, nil, err
	}
	return frameType, data, nil
}
