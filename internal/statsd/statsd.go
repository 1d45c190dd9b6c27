// Package statsd pushes metrics to a statsd daemon over UDP the way nsqd
// does: every interval, lines "<prefix><name>:<value>|c" (a counter's
// increase since the last push) or "|g" (a gauge), newline terminated,
// batched into datagrams of at most a configured size.
//
// Formatting and batching (Batch) are apart from the sending (Pusher), so
// they test without a socket.
package statsd

import (
	"net"
	"strconv"
	"strings"
)

// AppendCounter appends a counter line to dst.
func AppendCounter(dst []byte, prefix, name string, delta int64) []byte {
	return appendLine(dst, prefix, name, delta, 'c')
}

// AppendGauge appends a gauge line to dst.
func AppendGauge(dst []byte, prefix, name string, value int64) []byte {
	return appendLine(dst, prefix, name, value, 'g')
}

func appendLine(dst []byte, prefix, name string, value int64, kind byte) []byte {
	dst = append(dst, prefix...)
	dst = append(dst, name...)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, value, 10)
	return append(dst, '|', kind, '\n')
}

// HostKey turns host:port into a single statsd key element, as nsqd does:
// dots and colons become underscores.
func HostKey(hostport string) string {
	return strings.NewReplacer(".", "_", ":", "_").Replace(hostport)
}

// Prefix expands nsqd's --statsd-prefix: every %s becomes the HostKey of
// host and port, and a non-empty prefix ends with a dot. An empty pattern
// means no prefix.
func Prefix(pattern, host string, port int) string {
	if pattern == "" {
		return ""
	}
	key := HostKey(net.JoinHostPort(host, strconv.Itoa(port)))
	prefix := strings.ReplaceAll(pattern, "%s", key)
	if !strings.HasSuffix(prefix, ".") {
		prefix += "."
	}
	return prefix
}

// Batch collects one push's lines (names must not hold a newline; topic
// and channel names cannot) into packets of at most packetSize
// bytes, never splitting a line; a line longer than packetSize goes alone
// in a packet of its own (UDP may still carry it, or the network drops
// it, as with nsqd).
type Batch struct {
	prefix     string
	packetSize int
	packets    [][]byte
	current    []byte
	line       []byte

	// totals are this push's counter totals, previous the last push's.
	totals, previous map[string]uint64
}

// NewBatch starts a push. previous is the counter totals of the last push
// (Totals of its batch), nil for the first.
func NewBatch(prefix string, packetSize int, previous map[string]uint64) *Batch {
	return &Batch{
		prefix:     prefix,
		packetSize: max(packetSize, 1),
		totals:     make(map[string]uint64, len(previous)),
		previous:   previous,
	}
}

// Gauge adds a gauge line.
func (b *Batch) Gauge(name string, value int64) {
	b.add(AppendGauge(b.line[:0], b.prefix, name, value))
}

// Counter adds a counter line for a running total: the increase since the
// last push's total of the same name. A name new since the last push, or
// whose total went down (its topic or channel was deleted and made
// again), counts from zero.
func (b *Batch) Counter(name string, total uint64) {
	b.totals[name] = total
	delta := total
	if last, ok := b.previous[name]; ok && last <= total {
		delta = total - last
	}
	b.add(AppendCounter(b.line[:0], b.prefix, name, int64(delta)))
}

func (b *Batch) add(line []byte) {
	b.line = line
	if len(b.current) > 0 && len(b.current)+len(line) > b.packetSize {
		b.packets = append(b.packets, b.current)
		b.current = nil
	}
	if b.current == nil {
		b.current = make([]byte, 0, max(b.packetSize, len(line)))
	}
	b.current = append(b.current, line...)
}

// Packets returns the batch's packets, in the order their lines were
// added.
func (b *Batch) Packets() [][]byte {
	if len(b.current) > 0 {
		b.packets = append(b.packets, b.current)
		b.current = nil
	}
	return b.packets
}

// Totals returns the counter totals of this batch, for the next one.
func (b *Batch) Totals() map[string]uint64 { return b.totals }
