package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

const (
	// latencyHeaderSize is the start of every latency-mode body: the run's
	// nonce, so that messages left on the channel by an earlier run are not
	// measured, then the send time in nanoseconds since the run's epoch.
	// Publisher and consumer share the process, so the monotonic clock
	// serves both and wall-clock steps cannot skew the numbers.
	latencyHeaderSize = 16
	// latencyRDY is the consumer's RDY count, a typical go-nsq
	// MaxInFlight. With more than one message allowed in flight, a broker
	// that holds deliveries in the output buffer until its
	// output_buffer_timeout (250 ms in nsqd) shows that delay, as its real
	// clients see it.
	latencyRDY = 100
	// drainTimeout bounds the wait, once the publisher is done, for the
	// messages still on their way.
	drainTimeout = 5 * time.Second
)

// Latency publishes one message at a time at opts.Rate on one connection
// and consumes them on another, and reports each message's latency from
// just before its PUB is written to when its frame is read. When progress
// is not nil it gets a line a second.
//
// Publishing ends at opts.Duration, after opts.Count messages, or when ctx
// is done; the consumer then waits up to drainTimeout for the rest.
func Latency(ctx context.Context, opts *LatencyOptions, progress io.Writer) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	// Subscribe first, so that the channel exists before the first publish.
	conns, err := dialAll(ctx, opts.Addr, 2)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	subConn, pubConn := conns[0], conns[1]
	if err := subConn.subscribe(opts.Topic, opts.Channel); err != nil {
		return nil, err
	}

	epoch := time.Now()
	nonce := rand.Uint64()
	g := newWorkers(ctx)
	consumerCtx, stopConsumer := context.WithCancel(g.ctx)
	defer stopConsumer()
	tally := newTally(opts.Count, stopConsumer)
	cons := &consumer{
		conn:    subConn,
		tally:   tally,
		latency: new(Histogram),
		measure: func(body []byte, now time.Time) (time.Duration, bool) {
			if len(body) < latencyHeaderSize || binary.BigEndian.Uint64(body) != nonce {
				return 0, false
			}
			sent := time.Duration(binary.BigEndian.Uint64(body[8:]))
			return now.Sub(epoch) - sent, true
		},
	}
	var published atomic.Int64
	body := bytes.Repeat([]byte{'x'}, opts.Size)
	pub := newPublisher(pubConn, opts.Topic, body, 1, &quota{limit: opts.Count}, &published)
	pub.interval = paceInterval(opts.Rate, 1, 1)
	pub.stamp = func(b []byte) {
		binary.BigEndian.PutUint64(b, nonce)
		binary.BigEndian.PutUint64(b[8:], uint64(time.Since(epoch)))
	}

	stopProgress := startProgress(progress, "latency", &tally.received)
	defer stopProgress()
	start := time.Now()
	if err := subConn.ready(latencyRDY); err != nil {
		return nil, err
	}
	g.run(func(context.Context) error { return cons.run(consumerCtx) })
	publisherCtx, stopPublisher := context.WithTimeout(g.ctx, opts.Duration)
	defer stopPublisher()
	publisherDone := make(chan struct{})
	g.run(func(context.Context) error {
		defer close(publisherDone)
		return pub.run(publisherCtx)
	})

	<-publisherDone
	tally.lowerLimit(pub.count)
	drain := time.AfterFunc(drainTimeout, stopConsumer)
	defer drain.Stop()
	if err := g.wait(); err != nil {
		return nil, err
	}
	result := consumeResult("latency", start, []*consumer{cons}, tally)
	result.Latency = cons.latency.Summary("publish→receive")
	result.Missing = pub.count - result.Messages
	return result, nil
}
