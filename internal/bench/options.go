// Package bench is a load generator for any broker that speaks NSQ's V2
// TCP protocol (wren or nsqd), and a stand-in broker, the sink, that
// accepts publishes and stores nothing.
//
// The clients speak the protocol over raw sockets with buffers allocated
// once per connection, so that the tool measures the broker rather than
// itself. Every run is bounded by a duration, and optionally a count.
package bench

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"wren/protocol"
)

// The `flag` and `help` tags name and describe the command-line flags of
// each mode; cmd/wren binds them by reflection, as it does broker.Options.

// PublishOptions configure Publish.
type PublishOptions struct {
	Addr        string        `flag:"addr" help:"<addr>:<port> of the broker's TCP listener"`
	Topic       string        `flag:"topic" help:"topic to publish to (required)"`
	Batch       int           `flag:"batch" help:"messages per publish: 1 sends PUB, more send MPUB"`
	Connections int           `flag:"connections" help:"concurrent connections, each waiting for its OK before publishing again"`
	Size        int           `flag:"size" help:"message body size in bytes"`
	Rate        int64         `flag:"rate" help:"messages per second over all connections (0: as fast as the broker answers)"`
	Duration    time.Duration `flag:"duration" help:"stop after this long"`
	Count       int64         `flag:"count" help:"stop after this many messages (0: no limit; --duration still applies)"`
	JSON        bool          `flag:"json" help:"print the summary as one JSON object on stdout"`
}

// NewPublishOptions returns the defaults: one connection publishing 200-byte
// messages with PUB, flat out, for 10 seconds.
func NewPublishOptions() *PublishOptions {
	return &PublishOptions{
		Addr:        "127.0.0.1:4150",
		Batch:       1,
		Connections: 1,
		Size:        200,
		Duration:    10 * time.Second,
	}
}

// Validate reports every invalid option. It changes nothing.
func (o *PublishOptions) Validate() error {
	var c checker
	c.address(o.Addr)
	c.topic(o.Topic)
	c.check(o.Batch >= 1, "--batch must be >= 1, got %d", o.Batch)
	c.check(o.Connections >= 1, "--connections must be >= 1, got %d", o.Connections)
	c.check(o.Size >= 1, "--size must be >= 1, got %d", o.Size)
	c.check(o.Rate >= 0, "--rate must be >= 0, got %d", o.Rate)
	c.bounds(o.Duration, o.Count)
	return c.err()
}

// WantJSON reports whether the summary should be printed as JSON.
func (o *PublishOptions) WantJSON() bool { return o.JSON }

// ConsumeOptions configure Consume.
type ConsumeOptions struct {
	Addr        string        `flag:"addr" help:"<addr>:<port> of the broker's TCP listener"`
	Topic       string        `flag:"topic" help:"topic to subscribe to (required)"`
	Channel     string        `flag:"channel" help:"channel to subscribe to (required)"`
	Connections int           `flag:"connections" help:"concurrent connections subscribed to the channel"`
	RDY         int           `flag:"rdy" help:"RDY count per connection (capped at the broker's max_rdy_count)"`
	Duration    time.Duration `flag:"duration" help:"stop after this long"`
	Count       int64         `flag:"count" help:"stop after this many messages (0: no limit; --duration still applies)"`
	JSON        bool          `flag:"json" help:"print the summary as one JSON object on stdout"`
}

// NewConsumeOptions returns the defaults: one connection with RDY 2500
// (nsqd's default --max-rdy-count) for 10 seconds.
func NewConsumeOptions() *ConsumeOptions {
	return &ConsumeOptions{
		Addr:        "127.0.0.1:4150",
		Connections: 1,
		RDY:         2500,
		Duration:    10 * time.Second,
	}
}

// Validate reports every invalid option. It changes nothing.
func (o *ConsumeOptions) Validate() error {
	var c checker
	c.address(o.Addr)
	c.topic(o.Topic)
	c.channel(o.Channel)
	c.check(o.Connections >= 1, "--connections must be >= 1, got %d", o.Connections)
	c.check(o.RDY >= 1, "--rdy must be >= 1, got %d", o.RDY)
	c.bounds(o.Duration, o.Count)
	return c.err()
}

// WantJSON reports whether the summary should be printed as JSON.
func (o *ConsumeOptions) WantJSON() bool { return o.JSON }

// LatencyOptions configure Latency.
type LatencyOptions struct {
	Addr     string        `flag:"addr" help:"<addr>:<port> of the broker's TCP listener"`
	Topic    string        `flag:"topic" help:"topic to publish to and subscribe to (required)"`
	Channel  string        `flag:"channel" help:"channel to subscribe to (required)"`
	Rate     int64         `flag:"rate" help:"messages per second, published one at a time"`
	Size     int           `flag:"size" help:"message body size in bytes (at least 16: the run and the send time)"`
	Duration time.Duration `flag:"duration" help:"stop publishing after this long"`
	Count    int64         `flag:"count" help:"stop after this many messages (0: no limit; --duration still applies)"`
	JSON     bool          `flag:"json" help:"print the summary as one JSON object on stdout"`
}

// NewLatencyOptions returns the defaults: 1,000 messages a second of 200
// bytes for 10 seconds.
func NewLatencyOptions() *LatencyOptions {
	return &LatencyOptions{
		Addr:     "127.0.0.1:4150",
		Rate:     1000,
		Size:     200,
		Duration: 10 * time.Second,
	}
}

// Validate reports every invalid option. It changes nothing.
func (o *LatencyOptions) Validate() error {
	var c checker
	c.address(o.Addr)
	c.topic(o.Topic)
	c.channel(o.Channel)
	// Flat out would measure the queue the publisher builds, not the
	// broker's latency, so a rate is required.
	c.check(o.Rate >= 1, "--rate must be >= 1, got %d", o.Rate)
	c.check(o.Size >= latencyHeaderSize, "--size must be >= %d, got %d", latencyHeaderSize, o.Size)
	c.bounds(o.Duration, o.Count)
	return c.err()
}

// WantJSON reports whether the summary should be printed as JSON.
func (o *LatencyOptions) WantJSON() bool { return o.JSON }

// SinkOptions configure a Sink.
type SinkOptions struct {
	TCPAddress string `flag:"tcp-address" help:"<addr>:<port> to listen on for TCP clients"`

	// Logger receives the sink's logs; nil means slog.Default().
	Logger *slog.Logger `json:"-"`
}

// NewSinkOptions returns the defaults: nsqd's port, on loopback only,
// since the sink accepts anything from anyone.
func NewSinkOptions() *SinkOptions {
	return &SinkOptions{TCPAddress: "127.0.0.1:4150"}
}

// Validate reports every invalid option. It changes nothing.
func (o *SinkOptions) Validate() error {
	var c checker
	c.check(o.TCPAddress != "", "--tcp-address must not be empty")
	return c.err()
}

// checker collects every validation failure, so that a user fixes a bad
// command line in one go.
type checker struct{ errs []error }

func (c *checker) check(ok bool, format string, args ...any) {
	if !ok {
		c.errs = append(c.errs, fmt.Errorf(format, args...))
	}
}

func (c *checker) address(addr string) {
	c.check(addr != "", "--addr must not be empty")
}

func (c *checker) topic(name string) {
	if name == "" {
		c.check(false, "--topic is required")
		return
	}
	c.check(protocol.IsValidTopicName(name), "--topic %q is not a valid topic name", name)
}

func (c *checker) channel(name string) {
	if name == "" {
		c.check(false, "--channel is required")
		return
	}
	c.check(protocol.IsValidChannelName(name), "--channel %q is not a valid channel name", name)
}

// bounds insists on a positive duration: a count alone could wait forever
// on a broker that stops answering or a topic that runs dry.
func (c *checker) bounds(d time.Duration, count int64) {
	c.check(d > 0, "--duration must be > 0, got %s", d)
	c.check(count >= 0, "--count must be >= 0, got %d", count)
}

func (c *checker) err() error { return errors.Join(c.errs...) }
