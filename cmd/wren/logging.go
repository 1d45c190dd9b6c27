package main

import (
	"bytes"
	"io"
	"sync"
)

// prefixWriter starts every line written through it with prefix, as nsqd's
// --log-prefix does ("[nsqd] " by default).
type prefixWriter struct {
	prefix []byte
	w      io.Writer

	mu        sync.Mutex
	lineStart bool // the next byte begins a line
	buf       []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = p.buf[:0]
	for rest := b; len(rest) > 0; {
		if p.lineStart {
			p.buf = append(p.buf, p.prefix...)
			p.lineStart = false
		}
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
			p.lineStart = true
		}
		p.buf = append(p.buf, line...)
		rest = rest[len(line):]
	}
	// One Write per call keeps lines whole when stderr is shared.
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}
