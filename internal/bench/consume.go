package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"

	"wren/protocol"
)

// Consume subscribes opts.Connections connections to the channel, FINs
// every message, and reports the throughput. When progress is not nil it
// gets a line a second.
//
// The run ends at opts.Duration, after opts.Count messages, or when ctx is
// done; it stops at the first error and returns only the error.
func Consume(ctx context.Context, opts *ConsumeOptions, progress io.Writer) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	conns, err := dialAll(ctx, opts.Addr, opts.Connections)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	for _, c := range conns {
		if err := c.subscribe(opts.Topic, opts.Channel); err != nil {
			return nil, err
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	g := newWorkers(runCtx)
	tally := newTally(opts.Count, g.cancel)
	consumers := make([]*consumer, len(conns))
	for i, c := range conns {
		consumers[i] = &consumer{conn: c, tally: tally}
	}
	stopProgress := startProgress(progress, "consume", &tally.received)
	// Start the clock before RDY: nothing is delivered until then.
	start := time.Now()
	for _, c := range consumers {
		g.run(func(ctx context.Context) error {
			if err := c.conn.ready(int64(opts.RDY)); err != nil {
				return err
			}
			return c.run(ctx)
		})
	}
	err = g.wait()
	stopProgress()
	if err != nil {
		return nil, err
	}
	return consumeResult("consume", start, consumers, tally), nil
}

// consumeResult sums the consumers' work once they have all returned.
func consumeResult(mode string, start time.Time, consumers []*consumer, tally *tally) *Result {
	result := &Result{Mode: mode, Messages: tally.counted()}
	last := start
	for _, c := range consumers {
		result.Bytes += c.bytes
		if c.last.After(last) {
			last = c.last
		}
	}
	result.Elapsed = elapsed(start, last, result.Messages)
	return result
}

// tally counts the messages of a run over all its connections and stops
// the run at its limit.
type tally struct {
	received atomic.Int64
	// limit may fall while the run goes on: latency mode sets it to the
	// number published once the publisher is done.
	limit atomic.Int64
	stop  func()
}

func newTally(count int64, stop func()) *tally {
	t := &tally{stop: stop}
	if count == 0 {
		count = math.MaxInt64
	}
	t.limit.Store(count)
	return t
}

// claim counts one message. ok is false when the limit was already
// reached; last is true for the message that reaches it, whose consumer
// must then stop the run once its FINs are out.
func (t *tally) claim() (ok, last bool) {
	n := t.received.Add(1)
	limit := t.limit.Load()
	return n <= limit, n == limit
}

// lowerLimit sets the limit to n and stops the run if that many messages
// have already arrived. The order, store then load, pairs with claim's
// add then load, so that the stop is never missed.
func (t *tally) lowerLimit(n int64) {
	t.limit.Store(min(n, t.limit.Load()))
	if t.received.Load() >= t.limit.Load() {
		t.stop()
	}
}

// counted is the number of messages claimed within the limit.
func (t *tally) counted() int64 { return min(t.received.Load(), t.limit.Load()) }

// consumer reads messages on one subscribed connection. Only its own
// goroutine touches it until the run ends.
type consumer struct {
	conn  *brokerConn
	tally *tally
	// measure, when set, is given each body and returns the message's
	// latency, or ok false for a message this run did not publish, which
	// is finished but not counted.
	measure func(body []byte, now time.Time) (latency time.Duration, ok bool)

	bytes   int64
	last    time.Time // when the last counted message was read
	latency *Histogram
}

// run reads frames until the run stops. FINs and NOPs are buffered and
// flushed once no whole frame is left in the read buffer: one write(2)
// answers all the messages one read(2) brought.
func (c *consumer) run(ctx context.Context) error {
	defer c.conn.stopOnDone(ctx, 0)()
	frames, w := c.conn.frames, c.conn.w
	var (
		now     time.Time // of the current read, for measure
		counted bool      // a message was counted since the last flush
		reached bool      // this connection counted the run's last message
	)
	for {
		frameType, data, err := frames.next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume: %w", err)
		}
		switch frameType {
		case protocol.FrameTypeMessage:
			if c.measure != nil && now.IsZero() {
				now = time.Now()
			}
			ok, last, err := c.handleMessage(data, now)
			if err != nil {
				return err
			}
			counted = counted || ok
			reached = reached || last
		case protocol.FrameTypeResponse:
			if string(data) == string(protocol.ResponseHeartbeat) {
				_, _ = w.WriteString("NOP\n")
			}
		case protocol.FrameTypeError:
			return &BrokerError{Text: string(data)}
		default:
			return fmt.Errorf("consume: unexpected frame type %d", frameType)
		}
		if frames.frameBuffered() {
			continue
		}
		if counted {
			c.last = time.Now()
			counted = false
		}
		now = time.Time{}
		if err := w.Flush(); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume: %w", err)
		}
		if reached {
			// Only now that its FINs are out may the run stop, which
			// makes every connection's reads fail.
			c.tally.stop()
			return nil
		}
	}
}

// handleMessage buffers the answer to one message frame: FIN for a message
// counted or not this run's, REQ for one past the limit. counted reports
// whether it was counted, last whether it was the run's last.
func (c *consumer) handleMessage(data []byte, now time.Time) (counted, last bool, err error) {
	if len(data) < protocol.MessageHeaderSize {
		return false, false, fmt.Errorf("consume: message frame of %d bytes", len(data))
	}
	id := data[messageIDOffset : messageIDOffset+protocol.MsgIDLength]
	body := data[protocol.MessageHeaderSize:]
	var latency time.Duration
	if c.measure != nil {
		var ours bool
		if latency, ours = c.measure(body, now); !ours {
			c.answer("FIN ", id, "\n")
			return false, false, nil
		}
	}
	ok, last := c.tally.claim()
	if !ok {
		// Past the limit: hand it straight back. nsqd would otherwise
		// hold it until its message timeout, long after we close.
		c.answer("REQ ", id, " 0\n")
		return false, false, nil
	}
	c.answer("FIN ", id, "\n")
	c.bytes += int64(len(body))
	if c.measure != nil {
		c.latency.Record(latency)
	}
	return true, last, nil
}

// answer buffers a command about one message: verb, its ID, then tail.
func (c *consumer) answer(verb string, id []byte, tail string) {
	w := c.conn.w
	_, _ = w.WriteString(verb)
	_, _ = w.Write(id)
	_, _ = w.WriteString(tail)
}

// messageIDOffset is where the ID starts in a message frame's data, after
// the timestamp and the attempts.
const messageIDOffset = 8 + 2
