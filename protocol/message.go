package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MsgIDLength is the length of a message ID on the wire: 16 hex characters.
const MsgIDLength = 16

// MessageHeaderSize is the timestamp, attempts and ID before a message body.
const MessageHeaderSize = 8 + 2 + MsgIDLength

// MessageID is a message's 16-byte ASCII hex identifier.
type MessageID [MsgIDLength]byte

// Message is a message as it travels on the wire and in the disk queue.
// Body is shared, never modified after publish.
type Message struct {
	ID        MessageID
	Timestamp int64 // publish time, Unix nanoseconds
	Attempts  uint16
	Body      []byte
}

// EncodedSize is the length of m's encoding, header included.
func (m *Message) EncodedSize() int { return MessageHeaderSize + len(m.Body) }

// AppendMessage appends m's encoding,
// [int64 timestamp][uint16 attempts][16-byte ID][body], to dst.
func AppendMessage(dst []byte, m *Message) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.Timestamp))
	dst = binary.BigEndian.AppendUint16(dst, m.Attempts)
	dst = append(dst, m.ID[:]...)
	return append(dst, m.Body...)
}

// AppendMessageFrame appends m as a complete V2 message frame.
func AppendMessageFrame(dst []byte, m *Message) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(4+m.EncodedSize()))
	dst = binary.BigEndian.AppendUint32(dst, uint32(FrameTypeMessage))
	return AppendMessage(dst, m)
}

// ErrShortMessage is returned by DecodeMessage for data shorter than a header.
var ErrShortMessage = errors.New("message shorter than its header")

// DecodeMessage decodes a message encoded by AppendMessage. The returned
// message's Body aliases b.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) < MessageHeaderSize {
		return Message{}, fmt.Errorf("%w: %d bytes", ErrShortMessage, len(b))
	}
	var m Message
	m.Timestamp = int64(binary.BigEndian.Uint64(b[0:8]))
	m.Attempts = binary.BigEndian.Uint16(b[8:10])
	copy(m.ID[:], b[10:10+MsgIDLength])
	m.Body = b[MessageHeaderSize:]
	return m, nil
}
