package protocol

import (
	"encoding/binary"
	"slices"
)

// MaxMPUBCount is the most messages an MPUB body of maxBodySize can hold:
// 4 bytes of count, then at least 5 bytes (size + one byte) per message.
func MaxMPUBCount(maxBodySize int64) int64 { return (maxBodySize - 4) / 5 }

// ParseMPUB splits an MPUB body, [int32 n]([int32 size][bytes])×n, into
// message bodies that alias body. Every message is validated before any is
// returned, so a publish is all or nothing. The same layout serves the HTTP
// /mpub?binary=true endpoint.
func ParseMPUB(body []byte, maxMsgSize, maxBodySize int64) ([][]byte, *Error) {
	return AppendMPUB(nil, body, maxMsgSize, maxBodySize)
}

// AppendMPUB is ParseMPUB appending the bodies to dst, which it returns
// with its length restored on error.
func AppendMPUB(dst [][]byte, body []byte, maxMsgSize, maxBodySize int64) ([][]byte, *Error) {
	if len(body) < 4 {
		return dst, NewError(CodeBadBody, "MPUB failed to read message count")
	}
	n := int32(binary.BigEndian.Uint32(body))
	if n <= 0 || int64(n) > MaxMPUBCount(maxBodySize) {
		return dst, Errorf(CodeBadBody, "MPUB invalid message count %d", n)
	}
	rest := body[4:]
	// Room for every message the body can hold, not for what n claims.
	msgs := slices.Grow(dst, min(int(n), len(rest)/5+1))
	for i := int32(0); i < n; i++ {
		if len(rest) < 4 {
			return dst, Errorf(CodeBadMessage, "MPUB failed to read message(%d) body size", i)
		}
		size := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if size <= 0 {
			return dst, Errorf(CodeBadMessage, "MPUB invalid message(%d) body size %d", i, size)
		}
		if int64(size) > maxMsgSize {
			return dst, Errorf(CodeBadMessage, "MPUB message too big %d > %d", size, maxMsgSize)
		}
		if int64(len(rest)) < int64(size) {
			return dst, NewError(CodeBadMessage, "MPUB failed to read message body")
		}
		msgs = append(msgs, rest[:size:size])
		rest = rest[size:]
	}
	if len(rest) != 0 {
		return dst, Errorf(CodeBadBody, "MPUB body has %d bytes after its last message", len(rest))
	}
	return msgs, nil
}

// MPUBScanner follows an MPUB body as it is read, for clients whose
// declared body size is not the body's length: nsq.js and segmentio's
// nsq-go count only the message bytes, leaving out the count and each
// message's size. nsqd reads the messages by their own sizes and treats
// the declared size only as a limit, and so does a broker that reads the
// declared bytes, then asks Need how many more the next field wants.
// The zero value is ready for the start of a body.
type MPUBScanner struct {
	pos         int   // start of the next field
	count, left int32 // messages in all, and still to come
	total       int64 // message bytes so far
	begun       bool
}

// Need reports how many bytes body (all of the MPUB read so far) still
// lacks to hold the next field, or 0 once it holds every message. It
// checks the count and each size as nsqd does as they arrive, and bounds
// the message bytes by maxBodySize, so a body never grows past what the
// limits allow. Calls resume where the last one stopped.
func (s *MPUBScanner) Need(body []byte, maxMsgSize, maxBodySize int64) (int, *Error) {
	if !s.begun {
		if len(body) < 4 {
			return 4 - len(body), nil
		}
		n := int32(binary.BigEndian.Uint32(body))
		if n <= 0 || int64(n) > MaxMPUBCount(maxBodySize) {
			return 0, Errorf(CodeBadBody, "MPUB invalid message count %d", n)
		}
		s.begun, s.count, s.left, s.pos = true, n, n, 4
	}
	for s.left > 0 {
		if len(body)-s.pos < 4 {
			return 4 - (len(body) - s.pos), nil
		}
		size := int32(binary.BigEndian.Uint32(body[s.pos:]))
		if size <= 0 {
			return 0, Errorf(CodeBadMessage, "MPUB invalid message(%d) body size %d", s.count-s.left, size)
		}
		if int64(size) > maxMsgSize {
			return 0, Errorf(CodeBadMessage, "MPUB message too big %d > %d", size, maxMsgSize)
		}
		if s.total+int64(size) > maxBodySize {
			return 0, Errorf(CodeBadBody, "MPUB body too big %d > %d", s.total+int64(size), maxBodySize)
		}
		if missing := s.pos + 4 + int(size) - len(body); missing > 0 {
			return missing, nil
		}
		s.total += int64(size)
		s.pos += 4 + int(size)
		s.left--
	}
	return 0, nil
}

// AppendMPUBBody appends bodies in the MPUB layout: the client side.
func AppendMPUBBody(dst []byte, bodies [][]byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(bodies)))
	for _, b := range bodies {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
		dst = append(dst, b...)
	}
	return dst
}
