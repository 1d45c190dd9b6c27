package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Result is the summary of one run.
type Result struct {
	Mode     string
	Messages int64
	// Bytes counts message bodies only, not framing.
	Bytes int64
	// Elapsed runs from the first command to the last message counted,
	// so that idle time at the end of a run, such as a consumer waiting on
	// a drained topic, does not dilute the rate.
	Elapsed time.Duration
	// Latency is nil for a mode that measures none (consume).
	Latency *LatencySummary
	// Missing counts, in latency mode, messages published but not received
	// before the run gave up waiting for them.
	Missing int64
}

// MsgPerSec is the message rate over Elapsed.
func (r *Result) MsgPerSec() float64 { return perSecond(float64(r.Messages), r.Elapsed) }

// MBPerSec is the body throughput over Elapsed, in 10^6 bytes a second.
func (r *Result) MBPerSec() float64 { return perSecond(float64(r.Bytes), r.Elapsed) / 1e6 }

func perSecond(v float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return v / d.Seconds()
}

// WriteText writes the summary as one line, for a person.
func (r *Result) WriteText(w io.Writer) error {
	latency := "latency n/a"
	if l := r.Latency; l != nil {
		latency = fmt.Sprintf("%s latency p50 %s, p99 %s, p99.9 %s, max %s (%d samples)",
			l.Measures, roundDuration(l.P50), roundDuration(l.P99), roundDuration(l.P999), roundDuration(l.Max), l.Samples)
	}
	missing := ""
	if r.Missing > 0 {
		missing = fmt.Sprintf("; %d published but not received", r.Missing)
	}
	_, err := fmt.Fprintf(w, "%s: %d messages in %.2fs, %.0f msg/s, %.2f MB/s; %s%s\n",
		r.Mode, r.Messages, r.Elapsed.Seconds(), r.MsgPerSec(), r.MBPerSec(), latency, missing)
	return err
}

// roundDuration keeps three or four significant digits: 1.234ms, 45µs.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}

// jsonResult is the --json schema. Latencies are in microseconds; latency
// is null when the mode measures none, so the keys never change.
type jsonResult struct {
	Mode       string       `json:"mode"`
	Messages   int64        `json:"messages"`
	Bytes      int64        `json:"bytes"`
	Seconds    float64      `json:"seconds"`
	MsgsPerSec float64      `json:"msgs_per_sec"`
	MBPerSec   float64      `json:"mb_per_sec"`
	Latency    *jsonLatency `json:"latency"`
	Missing    int64        `json:"missing,omitempty"`
}

type jsonLatency struct {
	Measures string  `json:"measures"`
	Samples  uint64  `json:"samples"`
	P50      float64 `json:"p50_us"`
	P99      float64 `json:"p99_us"`
	P999     float64 `json:"p99_9_us"`
	Max      float64 `json:"max_us"`
}

// WriteJSON writes the summary as one JSON object on one line.
func (r *Result) WriteJSON(w io.Writer) error {
	out := jsonResult{
		Mode:       r.Mode,
		Messages:   r.Messages,
		Bytes:      r.Bytes,
		Seconds:    r.Elapsed.Seconds(),
		MsgsPerSec: r.MsgPerSec(),
		MBPerSec:   r.MBPerSec(),
		Missing:    r.Missing,
	}
	if l := r.Latency; l != nil {
		us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
		out.Latency = &jsonLatency{Measures: l.Measures, Samples: l.Samples, P50: us(l.P50), P99: us(l.P99), P999: us(l.P999), Max: us(l.Max)}
	}
	return json.NewEncoder(w).Encode(out)
}

// ProgressWriter returns f when it is a terminal and nil otherwise, so that
// live progress lines never end up in a file or a pipe.
func ProgressWriter(f *os.File) io.Writer {
	if f == nil {
		return nil
	}
	info, err := f.Stat()
	if err != nil || info.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return f
}

// startProgress writes the rate of counter to w once a second until the
// returned stop is called. A nil w prints nothing.
func startProgress(w io.Writer, mode string, counter *atomic.Int64) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(time.Second)
		defer ticker.Stop()
		start := time.Now()
		var last int64
		for {
			select {
			case <-done:
				return
			case now := <-ticker.C:
				total := counter.Load()
				fmt.Fprintf(w, "%s: %3.0fs %10d msg/s %12d total\n", mode, now.Sub(start).Seconds(), total-last, total)
				last = total
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// workers runs a run's goroutines under one context. The first to fail
// cancels the others, and its error is the run's: errors the others see
// because of that cancellation are not the cause and are dropped.
type workers struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func newWorkers(parent context.Context) *workers {
	ctx, cancel := context.WithCancel(parent)
	return &workers{ctx: ctx, cancel: cancel}
}

func (g *workers) run(fn func(ctx context.Context) error) {
	g.wg.Go(func() {
		if err := fn(g.ctx); err != nil {
			g.once.Do(func() {
				g.err = err
				g.cancel()
			})
		}
	})
}

// wait waits for every goroutine and returns the first error.
func (g *workers) wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
