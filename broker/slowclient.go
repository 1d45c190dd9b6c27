package broker

import (
	"crypto/tls"
	"io"
	"slices"
	"time"
)

// What wren does with slow or hostile clients, so that none can hold a
// connection, memory or /stats hostage:
//
//   - A command, its line and its body, must arrive whole within two
//     heartbeat intervals (the client's negotiated one), as nsqd sets its
//     read deadline once per command. The deadline is set by the first
//     socket read after the reader starts a command and is not renewed
//     until the next command, so sending a byte now and then does not keep
//     a connection open. A pipelined burst served from the read buffer
//     touches the deadline once per socket read, not once per command.
//   - A body's buffer grows as its bytes arrive (appendBody), so a client
//     that declares 5 MiB and sends little holds little.
//   - /stats reads what IDENTIFY set from clientInfo, an immutable value
//     swapped atomically, never under writeMu, which a pump blocked on a
//     client that does not read holds until its write deadline (one
//     heartbeat interval, refreshWriteDeadlineLocked) cuts it off.
//
// Each cut-off has its own closeReason: closeHeartbeatTimeout (no command
// started), closeSlowCommand, closeSlowBody and closeWriteTimeout.

// startCommandDeadline arms the read deadline for the command the reader
// loop is starting: two heartbeat intervals from now, or none when
// heartbeats are off. Called by deadlineReader on the first socket read of
// a command; only the reader goroutine calls it.
func (c *client) startCommandDeadline() {
	c.commandStarting = false
	if hb := time.Duration(c.heartbeatNS.Load()); hb > 0 {
		c.readDeadlineSet = true
		_ = c.raw.SetReadDeadline(time.Now().Add(2 * hb))
	} else if c.readDeadlineSet {
		c.readDeadlineSet = false
		_ = c.raw.SetReadDeadline(time.Time{})
	}
}

// bodyGrowthStep is the first step in which a body's buffer grows; later
// steps double what has arrived, so copying stays linear in the body size.
const bodyGrowthStep = 64 << 10

// appendBody reads n more bytes of a body onto dst. When dst has room for
// them they are read straight in (the pooled MPUB buffer of a normal
// client); otherwise the buffer grows only as bytes arrive, by
// bodyGrowthStep and then by doubling, never past len(dst)+n, so it
// holds at most about twice what the client has sent. The declared size
// is bounded by the caller.
func (c *client) appendBody(dst []byte, n int) ([]byte, error) {
	want := len(dst) + n
	if cap(dst) >= want {
		start := len(dst)
		dst = dst[:want]
		_, err := io.ReadFull(c.reader, dst[start:])
		return dst, err
	}
	defer c.bodyBufferSize.Store(0)
	for len(dst) < want {
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, min(want, max(2*len(dst), len(dst)+bodyGrowthStep))-len(dst))
			c.bodyBufferSize.Store(int64(cap(dst)))
		}
		start := len(dst)
		dst = dst[:min(cap(dst), want)]
		if _, err := io.ReadFull(c.reader, dst[start:]); err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// clientInfo is what /stats shows of a client's IDENTIFY and TLS upgrade.
// It is replaced whole, never changed, so /stats reads it without a lock.
type clientInfo struct {
	clientID, hostname, userAgent string
	topologyRegion, topologyZone  string
	deflate, snappy               bool
	tlsState                      *tls.ConnectionState
}

// publishInfoLocked makes the client's identity and settings visible to
// /stats. c.writeMu must be held (IDENTIFY changes them under it).
func (c *client) publishInfoLocked() {
	c.info.Store(&clientInfo{
		clientID:       c.clientID,
		hostname:       c.hostname,
		userAgent:      c.userAgent,
		topologyRegion: c.topologyRegion,
		topologyZone:   c.topologyZone,
		deflate:        c.settings.Deflate,
		snappy:         c.settings.Snappy,
		tlsState:       c.tlsState,
	})
}
