package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"wren/protocol"
)

// Publish publishes as opts say and reports the throughput and the
// latency of each publish→OK round trip. Each connection waits for its OK
// before publishing again, as NSQ's bench_writer does, so the broker sees
// opts.Connections publishes in flight at most. When progress is not nil
// it gets a line a second.
//
// The run ends at opts.Duration, after opts.Count messages, or when ctx is
// done, and the result covers what was published until then; it stops at
// the first error, such as an error frame, and returns only the error.
func Publish(ctx context.Context, opts *PublishOptions, progress io.Writer) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	conns, err := dialAll(ctx, opts.Addr, opts.Connections)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)

	body := bytes.Repeat([]byte{'x'}, opts.Size)
	quota := &quota{limit: opts.Count}
	var published atomic.Int64
	publishers := make([]*publisher, len(conns))
	for i, conn := range conns {
		publishers[i] = newPublisher(conn, opts.Topic, body, opts.Batch, quota, &published)
		publishers[i].interval = paceInterval(opts.Rate, opts.Batch, opts.Connections)
	}

	runCtx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	stopProgress := startProgress(progress, "publish", &published)
	start := time.Now()
	g := newWorkers(runCtx)
	for _, p := range publishers {
		g.run(p.run)
	}
	err = g.wait()
	stopProgress()
	if err != nil {
		return nil, err
	}

	result := &Result{Mode: "publish"}
	latency := new(Histogram)
	last := start
	for _, p := range publishers {
		result.Messages += p.count
		latency.Merge(p.latency)
		if p.last.After(last) {
			last = p.last
		}
	}
	result.Bytes = result.Messages * int64(opts.Size)
	result.Elapsed = elapsed(start, last, result.Messages)
	result.Latency = latency.Summary("publish→OK")
	return result, nil
}

// maxPaceLag is how far a paced publisher may fall behind its schedule and
// still catch up.
const maxPaceLag = 100 * time.Millisecond

// elapsed is a run's time from start to its last counted message, or to
// now when nothing was counted, so that an empty run shows how long it
// waited.
func elapsed(start, last time.Time, messages int64) time.Duration {
	if messages == 0 {
		return time.Since(start)
	}
	return last.Sub(start)
}

// paceInterval is the time between one connection's publishes that makes
// rate messages a second over all connections; 0 means flat out.
func paceInterval(rate int64, batch, connections int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) * float64(batch) * float64(connections) / float64(rate))
}

// publisher publishes on one connection. Only its own goroutine touches it
// until the run ends.
type publisher struct {
	conn     *brokerConn
	topic    string
	body     []byte
	batch    int
	quota    *quota
	total    *atomic.Int64 // shared by the run, for progress
	interval time.Duration // between publishes; 0 for flat out
	// stamp, when set, rewrites the body of a single-message command just
	// before it is sent; latency mode writes the send time there.
	stamp func(body []byte)

	command []byte // the full batch, encoded once
	count   int64
	last    time.Time // when the last OK arrived
	latency *Histogram
}

func newPublisher(conn *brokerConn, topic string, body []byte, batch int, q *quota, total *atomic.Int64) *publisher {
	return &publisher{
		conn:    conn,
		topic:   topic,
		body:    body,
		batch:   batch,
		quota:   q,
		total:   total,
		command: publishCommand(topic, body, batch, batch > 1),
		latency: new(Histogram),
	}
}

// publishCommand encodes n copies of body as PUB (n is 1 and multi false)
// or MPUB. The body of a PUB is the last len(body) bytes of the command.
func publishCommand(topic string, body []byte, n int, multi bool) []byte {
	if !multi {
		return protocol.AppendCommand(nil, "PUB", body, topic)
	}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = body
	}
	return protocol.AppendCommand(nil, "MPUB", protocol.AppendMPUBBody(nil, bodies), topic)
}

func (p *publisher) run(ctx context.Context) error {
	defer p.conn.stopOnDone(ctx, stopGrace)()
	next := time.Now()
	for ctx.Err() == nil {
		n := p.quota.take(int64(p.batch))
		if n == 0 {
			return nil
		}
		if p.interval > 0 {
			wait := time.Until(next)
			if wait > 0 && !sleep(ctx, wait) {
				return nil
			}
			// Behind schedule, publish at once to catch up, but owe no
			// more than maxPaceLag: a long stall would otherwise be
			// followed by a burst that measures a queue, not the rate.
			if -wait > maxPaceLag {
				next = time.Now().Add(-maxPaceLag)
			}
			next = next.Add(p.interval)
		}
		command := p.command
		if n < int64(p.batch) {
			command = publishCommand(p.topic, p.body, int(n), p.batch > 1)
		}
		if p.stamp != nil {
			p.stamp(command[len(command)-len(p.body):])
		}
		sent := time.Now()
		if err := p.conn.roundTrip(command); err != nil {
			if ctx.Err() != nil && isTimeout(err) {
				return nil
			}
			return fmt.Errorf("publish to %s: %w", p.topic, err)
		}
		p.last = time.Now()
		p.latency.Record(p.last.Sub(sent))
		p.count += n
		p.total.Add(n)
	}
	return nil
}

// sleep waits for d or until ctx is done, and reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// quota hands out a run's --count among its connections, so that exactly
// limit messages are sent however many connections share it.
type quota struct {
	limit int64 // 0 for no limit
	taken atomic.Int64
}

// take claims up to n messages and returns how many it got: fewer than n
// for the last batch, 0 once the limit is reached.
func (q *quota) take(n int64) int64 {
	if q.limit == 0 {
		return n
	}
	after := q.taken.Add(n)
	before := after - n
	switch {
	case before >= q.limit:
		return 0
	case after > q.limit:
		return q.limit - before
	}
	return n
}

// dialAll opens n identified connections to addr, or none.
func dialAll(ctx context.Context, addr string, n int) ([]*brokerConn, error) {
	conns := make([]*brokerConn, 0, n)
	for range n {
		c, err := dialBroker(ctx, addr)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeAll(conns []*brokerConn) {
	for _, c := range conns {
		_ = c.close()
	}
}
