// Package quantile keeps the end-to-end processing latency of a channel as
// nsqd does: targeted quantiles (Cormode et al.'s biased-quantile streams,
// from github.com/bmizerany/perks) over a sliding window made of two
// half-window streams. Every half window the older stream is cleared and
// becomes the current one; a query merges both, so it covers between one
// half and one whole window of the most recent samples.
//
// The caller passes the time in, so that tests can move it.
package quantile

import (
	"sync"
	"time"

	perks "github.com/bmizerany/perks/quantile"
)

// Result is a window's (or several windows' merged) sample count and the
// value at each configured quantile, in the order they were configured.
// The zero Result, with nil Percentiles, is what a channel without
// configured quantiles reports.
type Result struct {
	Count       int
	Percentiles []Percentile
}

// Percentile is the value (a latency in nanoseconds) at one quantile.
type Percentile struct {
	Quantile float64
	Value    float64
}

// Window is one channel's latency samples over the last window. A nil
// *Window records nothing and reports the zero Result. Its methods are safe
// for concurrent use.
type Window struct {
	quantiles []float64
	half      time.Duration

	mu        sync.Mutex
	streams   [2]*perks.Stream
	current   int       // index of the stream new samples go to
	rotatedAt time.Time // when streams[current] started
}

// New returns a window of the given length tracking quantiles (each in
// (0,1]), starting at now; nil when quantiles is empty, so that callers
// pay nothing when latency tracking is off.
func New(window time.Duration, quantiles []float64, now time.Time) *Window {
	if len(quantiles) == 0 {
		return nil
	}
	w := &Window{
		quantiles: append([]float64(nil), quantiles...),
		half:      max(window/2, 1),
		rotatedAt: now,
	}
	for i := range w.streams {
		w.streams[i] = perks.NewTargeted(w.quantiles...)
	}
	return w
}

// Observe records one latency, seen at now.
func (w *Window) Observe(latency time.Duration, now time.Time) {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.rotateLocked(now)
	w.streams[w.current].Insert(float64(latency))
	w.mu.Unlock()
}

// rotateLocked moves the window forward to now: once per half window that
// has ended since rotatedAt, the older stream is cleared and becomes the
// current one. A half ends strictly after rotatedAt+half, as in nsqd.
// w.mu must be held.
func (w *Window) rotateLocked(now time.Time) {
	elapsed := now.Sub(w.rotatedAt)
	if elapsed <= w.half {
		return
	}
	// The number of halves that ended: the smallest n leaving
	// now <= rotatedAt + (n+1)·half.
	n := (elapsed - 1) / w.half
	w.rotatedAt = w.rotatedAt.Add(n * w.half)
	if n >= 2 {
		// Idle for a whole window or more: nothing is recent.
		w.streams[0].Reset()
		w.streams[1].Reset()
	} else {
		w.streams[w.current^1].Reset()
	}
	w.current ^= int(n & 1)
}

// Result reports the window's samples as of now.
func (w *Window) Result(now time.Time) Result {
	if w == nil {
		return Result{}
	}
	return Merge(now, w)
}

// Merge reports the samples of every window merged as one, as nsqd reports
// a topic from its channels. The quantiles are the first non-nil window's
// (a broker configures all its channels alike). With no non-nil window it
// returns the zero Result.
func Merge(now time.Time, windows ...*Window) Result {
	var merged *perks.Stream
	var quantiles []float64
	for _, w := range windows {
		if w == nil {
			continue
		}
		if merged == nil {
			quantiles = w.quantiles
			merged = perks.NewTargeted(quantiles...)
		}
		w.mu.Lock()
		w.rotateLocked(now)
		for _, s := range w.streams {
			// Merge sorts the samples it is given, and an unflushed stream
			// hands out its own buffer: both happen under w.mu.
			merged.Merge(s.Samples())
		}
		w.mu.Unlock()
	}
	if merged == nil {
		return Result{}
	}
	r := Result{Count: merged.Count(), Percentiles: make([]Percentile, len(quantiles))}
	for i, q := range quantiles {
		r.Percentiles[i] = Percentile{Quantile: q, Value: merged.Query(q)}
	}
	return r
}
