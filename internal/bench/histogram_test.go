package bench

import (
	"math"
	"testing"
	"time"
)

func TestPercentileExactRange(t *testing.T) {
	var h Histogram
	// Record 100 down to 1 so that order cannot matter.
	for v := 100; v >= 1; v-- {
		h.Record(time.Duration(v))
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.01, 1}, {0.5, 50}, {0.9, 90}, {0.99, 99}, {0.999, 100}, {1, 100},
	}
	for _, tt := range tests {
		if got := h.Percentile(tt.q); got != tt.want {
			t.Errorf("Percentile(%v) = %d, want %d", tt.q, got, tt.want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 {
		t.Errorf("Count, Max = %d, %d; want 100, 100", h.Count(), h.Max())
	}
}

func TestPercentileRelativeError(t *testing.T) {
	for _, v := range []time.Duration{
		257, 1000, 45 * time.Microsecond, 1500 * time.Microsecond, 3 * time.Second, time.Hour, math.MaxInt64 / 2,
	} {
		var h Histogram
		h.Record(v)
		h.Record(v + v/2) // a larger max, so the bucket bound is what is reported
		got := h.Percentile(0.5)
		if got < v || float64(got-v) > float64(v)/subBuckets {
			t.Errorf("Percentile(0.5) of {%d, %d} = %d, want within 1/%d above %d", v, v+v/2, got, subBuckets, v)
		}
	}
}

func TestPercentileNeverAboveMax(t *testing.T) {
	var h Histogram
	h.Record(1000)
	if got := h.Percentile(0.5); got != 1000 {
		t.Errorf("Percentile(0.5) = %d, want the max 1000", got)
	}
}

func TestBucketsAreContiguous(t *testing.T) {
	for i := range histogramBuckets - 1 {
		high := bucketHigh(i)
		if got := bucketOf(high); got != i {
			t.Fatalf("bucketOf(bucketHigh(%d) = %d) = %d", i, high, got)
		}
		if got := bucketOf(high + 1); got != i+1 {
			t.Fatalf("bucketOf(bucketHigh(%d)+1 = %d) = %d, want %d", i, high+1, got, i+1)
		}
	}
	if got := bucketOf(math.MaxInt64); got != histogramBuckets-1 {
		t.Errorf("bucketOf(MaxInt64) = %d, want the last bucket %d", got, histogramBuckets-1)
	}
}

func TestHistogramEmptyNegativeAndMerge(t *testing.T) {
	var a, b Histogram
	if got := a.Percentile(0.99); got != 0 {
		t.Errorf("empty Percentile = %d, want 0", got)
	}
	a.Record(-5 * time.Millisecond) // a stepped clock counts as zero
	if got := a.Percentile(1); got != 0 {
		t.Errorf("Percentile after a negative value = %d, want 0", got)
	}
	for v := 1; v <= 99; v++ {
		b.Record(time.Duration(v))
	}
	a.Merge(&b)
	s := a.Summary("test")
	want := LatencySummary{Measures: "test", Samples: 100, P50: 49, P99: 98, P999: 99, Max: 99}
	if *s != want {
		t.Errorf("Summary = %+v, want %+v", *s, want)
	}
}

func TestHistogramRecordAllocatesNothing(t *testing.T) {
	h := new(Histogram)
	allocs := testing.AllocsPerRun(100, func() { h.Record(1234 * time.Microsecond) })
	if allocs != 0 {
		t.Errorf("Record allocates %v times", allocs)
	}
}
