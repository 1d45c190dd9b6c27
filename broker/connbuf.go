package broker

import (
	"bytes"
	"errors"
	"io"
	"math/bits"
	"sync"
	"sync/atomic"
)

// A connection's buffers are sized to what it is doing, as nats-server
// sizes its own: an idle connection keeps a small read buffer and no
// output buffer, so thousands of idle clients cost little; a busy one
// borrows full-size buffers from pools shared by all connections and gives
// them back once it has caught up.
const (
	// idleReadBufferSize is the read buffer a connection keeps while it
	// is idle: enough for a consumer's commands and a typical IDENTIFY.
	idleReadBufferSize = 512
	// fullReadBufferSize is the read buffer of a busy connection, and
	// bounds a command line (with its "\n") as nsqd's 16 KiB bufio
	// reader does.
	fullReadBufferSize = 16 * 1024
)

// errLineFull says a command line does not fit the full read buffer.
var errLineFull = errors.New("read buffer full")

var fullReadBuffers = sync.Pool{New: func() any {
	b := make([]byte, fullReadBufferSize)
	return &b
}}

// connReader buffers a connection's input. It reads into its own small
// buffer until a read fills the free space (more is waiting) or a line
// does not fit; then it borrows a full-size buffer from fullReadBuffers,
// and gives it back when it has consumed everything and its last read
// came up short (it has caught up with the client). A blocked read on an
// idle connection therefore holds only the small buffer (unless the
// client's last burst ended exactly at the end of a full read: then the
// buffer goes back after the next read). Reads of at least a buffer's
// size go straight into the caller's slice, so a large body never passes
// through (or grows) the buffer.
//
// Only the reader goroutine uses a connReader; size mirrors len(buf) for
// others (tests) to read.
//
// Slices returned by readLine alias the buffer and are valid only until
// the next read, as with bufio.Reader.ReadSlice.
type connReader struct {
	src   io.Reader
	small []byte
	full  *[]byte // borrowed; nil while idle
	buf   []byte  // small or *full
	r, w  int     // buf[r:w] is buffered
	busy  bool    // the last read from src filled what it was given
	err   error   // from src; returned once the buffer is drained
	size  atomic.Int32
}

func newConnReader(src io.Reader) *connReader {
	small := make([]byte, idleReadBufferSize)
	b := &connReader{src: src, small: small, buf: small}
	b.size.Store(idleReadBufferSize)
	return b
}

// buffered is how many bytes are buffered and not yet consumed.
func (b *connReader) buffered() int { return b.w - b.r }

// bufferSize is the size of the buffer in use: idleReadBufferSize while
// the connection is idle. Safe from any goroutine.
func (b *connReader) bufferSize() int { return int(b.size.Load()) }

// takeBuffered returns a copy of the buffered bytes and consumes them.
func (b *connReader) takeBuffered() []byte {
	out := append([]byte(nil), b.buf[b.r:b.w]...)
	b.r = b.w
	return out
}

// fill compacts the buffer, picks the buffer size for the next read as
// described on connReader, and reads from src once. It fails with
// errLineFull when the full buffer has no free space.
func (b *connReader) fill() {
	if b.r > 0 {
		b.w = copy(b.buf, b.buf[b.r:b.w])
		b.r = 0
	}
	switch {
	case b.full != nil && b.w == 0 && !b.busy:
		// Caught up: wait for the next command with the small buffer.
		fullReadBuffers.Put(b.full)
		b.full, b.buf = nil, b.small
		b.size.Store(idleReadBufferSize)
	case b.full == nil && (b.busy || b.w == len(b.buf)):
		b.borrowFull()
	}
	if b.w == len(b.buf) {
		b.err = errLineFull
		return
	}
	for range 100 {
		n, err := b.src.Read(b.buf[b.w:])
		b.busy = n == len(b.buf)-b.w
		b.w += n
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			if b.busy && b.full == nil {
				b.readAvailable()
			}
			return
		}
	}
	b.err = io.ErrNoProgress
}

func (b *connReader) borrowFull() {
	b.full = fullReadBuffers.Get().(*[]byte)
	copy(*b.full, b.buf[:b.w])
	b.buf = *b.full
	b.size.Store(fullReadBufferSize)
}

// availableReader is a source that can read what has already arrived
// without waiting for more.
type availableReader interface {
	// readAvailable reads what p can hold of the bytes that have
	// arrived; 0 when none have. ok is false when the source cannot
	// read without waiting.
	readAvailable(p []byte) (n int, ok bool, err error)
}

// readAvailable follows a read that filled the small buffer: more is
// probably waiting, so it moves to the full buffer and takes what has
// already arrived, without waiting. Commands that arrived together are
// then executed, and answered with one flush, together, as they were when
// every read used the full buffer.
func (b *connReader) readAvailable() {
	src, ok := b.src.(availableReader)
	if !ok {
		return
	}
	b.borrowFull()
	n, ok, err := src.readAvailable(b.buf[b.w:])
	if !ok {
		return
	}
	b.busy = n == len(b.buf)-b.w
	b.w += n
	if err != nil {
		b.err = err
	}
}

// readError returns the pending read error and clears it, as bufio does.
func (b *connReader) readError() error {
	err := b.err
	b.err = nil
	return err
}

// readLine returns the next line including its "\n". A line longer than
// fullReadBufferSize fails with errLineFull.
func (b *connReader) readLine() ([]byte, error) {
	searched := 0
	for {
		if i := bytes.IndexByte(b.buf[b.r+searched:b.w], '\n'); i >= 0 {
			end := b.r + searched + i + 1
			line := b.buf[b.r:end]
			b.r = end
			return line, nil
		}
		searched = b.w - b.r
		if b.err != nil {
			return nil, b.readError()
		}
		b.fill()
	}
}

// readSize reads a 4-byte big-endian size prefix.
func (b *connReader) readSize() (int32, error) {
	for b.w-b.r < 4 {
		if b.err != nil {
			return 0, b.readError()
		}
		b.fill()
	}
	p := b.buf[b.r : b.r+4]
	b.r += 4
	return int32(uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])), nil
}

// Read reads into p like bufio.Reader.Read: buffered bytes first; with an
// empty buffer, a p at least as large as the buffer is read into directly.
func (b *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if b.r == b.w {
		if b.err != nil {
			return 0, b.readError()
		}
		if len(p) >= len(b.buf) {
			// A body read to its end says nothing of what follows
			// it: the next fill starts small.
			b.busy = false
			return b.src.Read(p)
		}
		b.r, b.w = 0, 0
		b.fill()
		if b.r == b.w {
			return 0, b.readError()
		}
	}
	n := copy(p, b.buf[b.r:b.w])
	b.r += n
	return n, nil
}

// release gives a borrowed buffer back; the reader is not used again.
func (b *connReader) release() {
	if b.full != nil {
		fullReadBuffers.Put(b.full)
		b.full = nil
	}
	b.buf, b.small, b.r, b.w = nil, nil, 0, 0
	b.size.Store(0)
}

// Output buffers are borrowed per burst of writes: from the first frame
// written after a flush to the flush that leaves nothing pending. They
// come from pools by power-of-two capacity, so a client's
// output_buffer_size picks the class whose buffers hold it.
const (
	minOutputClass = 6  // 64 B, the smallest output_buffer_size
	maxOutputClass = 20 // 1 MiB; larger buffers are not pooled
)

var outputBuffers [maxOutputClass + 1]sync.Pool

// outputClass is the pool for buffers holding size bytes, or -1.
func outputClass(size int) int {
	c := bits.Len(uint(size - 1))
	if c < minOutputClass {
		c = minOutputClass
	}
	if c > maxOutputClass {
		return -1
	}
	return c
}

// getOutputBuffer returns an empty buffer with room for size bytes.
func getOutputBuffer(size int) *[]byte {
	class := outputClass(size)
	if class < 0 {
		b := make([]byte, 0, size)
		return &b
	}
	if p, ok := outputBuffers[class].Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 0, 1<<class)
	return &b
}

// putOutputBuffer returns a buffer from getOutputBuffer; one that grew
// past its class (a frame larger than the buffer) is left to the GC.
func putOutputBuffer(p *[]byte) {
	class := outputClass(cap(*p))
	if class < 0 || cap(*p) != 1<<class {
		return
	}
	*p = (*p)[:0]
	outputBuffers[class].Put(p)
}
