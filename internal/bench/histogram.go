package bench

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-spaced buckets, in the manner of an
// HDR histogram: values below 2×subBuckets nanoseconds are exact, and
// above that every power of two is split into subBuckets buckets, so a
// recorded value is off by less than 1/subBuckets (under 1%). Recording
// is an array increment; the zero value is ready to use; one Histogram
// per goroutine, merged at the end, needs no locks.
type Histogram struct {
	counts [histogramBuckets]uint64
	total  uint64
	max    time.Duration
}

const (
	subBucketBits = 7
	subBuckets    = 1 << subBucketBits // 128
	// exactLimit is the first value that does not get a bucket of its own.
	exactLimit = 2 * subBuckets
	// histogramBuckets covers every positive int64: the top bit of such a
	// value is at most bit 62, so the largest shift is 62-subBucketBits.
	histogramBuckets = (62 - subBucketBits + 2) * subBuckets
)

// bucketOf maps a value to its bucket. Buckets are contiguous: the first
// value past the exact range, 2×subBuckets, lands in bucket 2×subBuckets.
func bucketOf(v uint64) int {
	if v < exactLimit {
		return int(v)
	}
	shift := bits.Len64(v) - 1 - subBucketBits
	mantissa := v >> uint(shift) // in [subBuckets, 2×subBuckets)
	return (shift+1)*subBuckets + int(mantissa-subBuckets)
}

// bucketHigh is the largest value that maps to bucket i.
func bucketHigh(i int) uint64 {
	if i < exactLimit {
		return uint64(i)
	}
	shift := i/subBuckets - 1
	mantissa := uint64(i%subBuckets + subBuckets)
	return (mantissa+1)<<uint(shift) - 1
}

// Record adds one duration; a negative one, from a clock that stepped,
// counts as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
	if d > h.max {
		h.max = d
	}
}

// Merge adds every value recorded in other.
func (h *Histogram) Merge(other *Histogram) {
	for i, n := range other.counts {
		h.counts[i] += n
	}
	h.total += other.total
	h.max = max(h.max, other.max)
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest value recorded, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Percentile returns the smallest recorded value v, to the histogram's
// precision, such that at least q×Count values are <= v, for q in (0, 1].
// It reports a bucket's upper bound, never more than Max, so it errs high
// rather than flattering the broker. With nothing recorded it returns 0.
func (h *Histogram) Percentile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, n := range h.counts {
		seen += n
		if seen >= rank {
			return min(time.Duration(bucketHigh(i)), h.max)
		}
	}
	return h.max
}

// LatencySummary is what a run reports of a Histogram.
type LatencySummary struct {
	// Measures says what was timed: "publish→OK" or "publish→receive".
	Measures string
	Samples  uint64
	P50      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
}

// Summary returns the percentiles a run reports.
func (h *Histogram) Summary(measures string) *LatencySummary {
	return &LatencySummary{
		Measures: measures,
		Samples:  h.total,
		P50:      h.Percentile(0.50),
		P99:      h.Percentile(0.99),
		P999:     h.Percentile(0.999),
		Max:      h.max,
	}
}
