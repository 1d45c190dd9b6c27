package broker

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// chunkReader returns data in chunks whose sizes come from sizes, cycled.
type chunkReader struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzConnReader reads any input, split into reads of any sizes, as a
// mix of lines and sized bodies (the op bytes choose which), and checks
// the result against bufio.Reader over the same bytes: the connection
// reader must agree with it byte for byte, or fail only where a line
// passes its limit.
func FuzzConnReader(f *testing.F) {
	f.Add([]byte("NOP\nPUB t\n\x00\x00\x00\x05hello"), []byte{0, 3, 200}, []byte{0, 0, 1})
	f.Add(bytes.Repeat([]byte("FIN 0123456789abcdef\n"), 100), []byte{255}, []byte{0})
	f.Add([]byte("MPUB t\n\x00\x00\x02\x00"+string(bytes.Repeat([]byte{'x'}, 512))), []byte{7, 255, 1}, []byte{0, 1})
	f.Fuzz(func(t *testing.T, data, sizes, ops []byte) {
		r := newConnReader(&chunkReader{data: data, sizes: sizes})
		ref := bufio.NewReaderSize(bytes.NewReader(data), 2*fullReadBufferSize)
		// Bounded work per input: reads may be one byte each.
		const maxBody, maxTotal = 20000, 64 << 10
		total := 0
		wantBuf, gotBuf := make([]byte, maxBody), make([]byte, maxBody)
		for step := 0; step < 200 && total < maxTotal; step++ {
			op := byte(0)
			if len(ops) > 0 {
				op = ops[step%len(ops)] % 2
			}
			if op == 0 {
				want, wantErr := ref.ReadSlice('\n')
				got, err := r.readLine()
				if errors.Is(err, errLineFull) {
					if len(want) < fullReadBufferSize && wantErr == nil {
						t.Fatalf("step %d: errLineFull for a %d-byte line", step, len(want))
					}
					return
				}
				if err != nil && wantErr != nil {
					return // both at the end; an unfinished last line is dropped
				}
				if err != nil || wantErr != nil || !bytes.Equal(got, want) {
					t.Fatalf("step %d: readLine %q, %v; bufio %q, %v", step, got, err, want, wantErr)
				}
				total += len(got)
				continue
			}
			size, err := r.readSize()
			var hdr [4]byte
			_, wantErr := io.ReadFull(ref, hdr[:])
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("step %d: readSize %v; bufio %v", step, err, wantErr)
			}
			if err != nil {
				return
			}
			n := int(uint32(size) % maxBody)
			want, got := wantBuf[:n], gotBuf[:n]
			wn, wantErr := io.ReadFull(ref, want)
			gn, err := io.ReadFull(r, got)
			total += 4 + gn
			if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (err == nil) != (wantErr == nil) {
				t.Fatalf("step %d: body of %d: read %d, %v; bufio %d, %v", step, n, gn, err, wn, wantErr)
			}
			if err != nil {
				return
			}
		}
	})
}
