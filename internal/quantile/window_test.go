package quantile

import (
	"math"
	"testing"
	"time"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func observeRange(w *Window, from, to int, now time.Time) {
	for v := from; v <= to; v++ {
		w.Observe(time.Duration(v), now)
	}
}

func TestNilWindowWithoutQuantiles(t *testing.T) {
	w := New(time.Minute, nil, start)
	if w != nil {
		t.Fatalf("New without quantiles = %v, want nil", w)
	}
	w.Observe(time.Second, start) // must not panic
	if r := w.Result(start); r.Count != 0 || r.Percentiles != nil {
		t.Errorf("nil window result %+v, want zero", r)
	}
	if r := Merge(start, nil, w); r.Count != 0 || r.Percentiles != nil {
		t.Errorf("merge of nil windows %+v, want zero", r)
	}
}

func TestResultValues(t *testing.T) {
	qs := []float64{0.5, 0.99, 1}
	w := New(10*time.Minute, qs, start)
	if r := w.Result(start); r.Count != 0 || len(r.Percentiles) != 3 || r.Percentiles[0].Value != 0 {
		t.Errorf("empty window: %+v, want count 0 and three zero values", r)
	}
	observeRange(w, 1, 10000, start)
	r := w.Result(start)
	if r.Count != 10000 {
		t.Errorf("count %d, want 10000", r.Count)
	}
	for i, want := range []float64{5000, 9900, 10000} {
		p := r.Percentiles[i]
		if p.Quantile != qs[i] {
			t.Errorf("percentile %d is for %v, want %v", i, p.Quantile, qs[i])
		}
		// The targeted streams promise rank error within 1% of n.
		if math.Abs(p.Value-want) > 100 {
			t.Errorf("q%v = %v, want %v ± 100", p.Quantile, p.Value, want)
		}
	}
}

func TestWindowRotation(t *testing.T) {
	const window = 10 * time.Second
	half := window / 2
	w := New(window, []float64{1}, start)
	w.Observe(100, start)

	// Exactly at the end of the first half nothing rotates yet (nsqd
	// rotates strictly after it).
	w.Observe(200, start.Add(half))
	if r := w.Result(start.Add(half)); r.Count != 2 {
		t.Fatalf("at half: count %d, want 2", r.Count)
	}
	// Just after: the first half's samples are now the previous stream,
	// still reported.
	w.Observe(300, start.Add(half+1))
	if r := w.Result(start.Add(half + 1)); r.Count != 3 || r.Percentiles[0].Value != 300 {
		t.Fatalf("after one rotation: %+v, want 3 samples, max 300", r)
	}
	// One more half: the first half's two samples go, the third stays.
	if r := w.Result(start.Add(2*half + 1)); r.Count != 1 || r.Percentiles[0].Value != 300 {
		t.Fatalf("after two rotations: %+v, want only the sample of the second half", r)
	}
	// And after a third it is gone too.
	if r := w.Result(start.Add(3*half + 1)); r.Count != 0 {
		t.Fatalf("after three rotations: %+v, want empty", r)
	}
}

func TestWindowIdleLongerThanWindow(t *testing.T) {
	w := New(time.Minute, []float64{0.5}, start)
	observeRange(w, 1, 1000, start)
	later := start.Add(time.Hour + 7*time.Second)
	w.Observe(5, later)
	if r := w.Result(later); r.Count != 1 || r.Percentiles[0].Value != 5 {
		t.Fatalf("after an idle hour: %+v, want the one new sample", r)
	}
	// The halves stay aligned to the start: the next rotation is at the
	// next multiple of 30s after start, not 30s after the idle observe.
	next := start.Add(time.Hour + 30*time.Second + 1)
	w.Observe(6, next)
	if r := w.Result(next); r.Count != 2 {
		t.Fatalf("one half later: count %d, want 2", r.Count)
	}
	if r := w.Result(start.Add(time.Hour + 60*time.Second + 1)); r.Count != 1 {
		t.Fatalf("two halves later: count %d, want 1", r.Count)
	}
}

func TestMergeWindows(t *testing.T) {
	qs := []float64{0.5, 1}
	a := New(time.Minute, qs, start)
	b := New(time.Minute, qs, start)
	observeRange(a, 1, 100, start)
	observeRange(b, 101, 200, start.Add(31*time.Second)) // b has rotated once
	r := Merge(start.Add(31*time.Second), a, nil, b)
	if r.Count != 200 {
		t.Fatalf("merged count %d, want 200", r.Count)
	}
	if got := r.Percentiles[1].Value; got != 200 {
		t.Errorf("merged max %v, want 200", got)
	}
	if got := r.Percentiles[0].Value; math.Abs(got-100) > 4 {
		t.Errorf("merged median %v, want 100 ± 4", got)
	}
	// Merging reads the windows without changing them.
	if r := a.Result(start); r.Count != 100 {
		t.Errorf("a after merge: count %d, want 100", r.Count)
	}
}

func BenchmarkObserve(b *testing.B) {
	w := New(10*time.Minute, []float64{0.5, 0.99, 0.999}, start)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		w.Observe(time.Duration(i%100000), start)
	}
}
