package main

import (
	"bytes"
	"io"
	"log/slog"
	"sync"

	"wren/broker"
)

// setUpLogging gives opts a text logger on w whose level --log-level sets and
// PUT /config/log_level can change later through opts.LevelVar.
func setUpLogging(opts *broker.Options, w io.Writer) {
	opts.LevelVar = newLevelVar(opts.LogLevel)
	opts.Logger = newLogger(w, opts.LogPrefix, opts.LevelVar)
}

// newLevelVar returns a level set to one of nsqd's level names, which both
// the broker and the lookup use.
func newLevelVar(name string) *slog.LevelVar {
	level, err := broker.ParseLogLevel(name)
	if err != nil {
		level = slog.LevelInfo // unreachable: Validate checked the level
	}
	levelVar := new(slog.LevelVar)
	levelVar.Set(level)
	return levelVar
}

// newLogger returns a text logger on w at level whose every line starts
// with prefix, as nsqd's --log-prefix does.
func newLogger(w io.Writer, prefix string, level slog.Leveler) *slog.Logger {
	if prefix != "" {
		w = &prefixWriter{prefix: []byte(prefix), w: w, lineStart: true}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

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
