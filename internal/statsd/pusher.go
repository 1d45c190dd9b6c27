package statsd

import (
	"context"
	"log/slog"
	"net"
	"time"
)

// Options configure a Pusher.
type Options struct {
	// Address is the statsd daemon's UDP host:port.
	Address string
	// Prefix goes in front of every name (see Prefix).
	Prefix string
	// Interval is the time between pushes.
	Interval time.Duration
	// PacketSize bounds each datagram, in bytes.
	PacketSize int
	// Logger receives the pusher's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Pusher sends what collect adds to a Batch to a statsd daemon, once every
// interval. A daemon that is down or unreachable costs at most a log line
// per interval: UDP sends do not wait for it, and each push's writes have
// a deadline of one interval.
type Pusher struct {
	opts    Options
	logger  *slog.Logger
	collect func(*Batch)
	totals  map[string]uint64
}

// NewPusher returns a pusher; Run starts it.
func NewPusher(opts Options, collect func(*Batch)) *Pusher {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Pusher{opts: opts, logger: logger.With("statsd", opts.Address), collect: collect}
}

// Run pushes every interval until ctx is done.
func (p *Pusher) Run(ctx context.Context) {
	ticker := time.NewTicker(p.opts.Interval)
	defer ticker.Stop()
	p.logger.Info("pushing stats to statsd", "interval", p.opts.Interval, "prefix", p.opts.Prefix)
	for {
		select {
		case <-ctx.Done():
			p.logger.Info("statsd pusher stopped")
			return
		case <-ticker.C:
			p.push(ctx)
		}
	}
}

// push collects one batch and sends it. The socket is dialled afresh each
// time, as nsqd does, so a changed DNS name is followed.
func (p *Pusher) push(ctx context.Context) {
	batch := NewBatch(p.opts.Prefix, p.opts.PacketSize, p.totals)
	p.collect(batch)
	// The totals move on even if the send fails: a counter's increase is
	// lost with its packet, never reported twice.
	p.totals = batch.Totals()
	packets := batch.Packets()
	if len(packets) == 0 {
		return
	}
	dialer := net.Dialer{Timeout: min(time.Second, p.opts.Interval)}
	conn, err := dialer.DialContext(ctx, "udp", p.opts.Address)
	if err != nil {
		if ctx.Err() == nil {
			p.logger.Error("statsd unreachable", "err", err)
		}
		return
	}
	defer conn.Close()
	_ = conn.SetWriteDeadline(time.Now().Add(p.opts.Interval))
	var firstErr error
	failed := 0
	for _, pkt := range packets {
		if _, err := conn.Write(pkt); err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if firstErr != nil {
		p.logger.Warn("sending stats to statsd failed", "packets", len(packets), "failed", failed, "err", firstErr)
	}
}
