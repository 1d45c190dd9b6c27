package broker

import (
	"errors"
	"time"

	"wren/protocol"
)

// maxBatch bounds how many messages the pump takes from its channel per
// wake-up, so one busy client cannot hold the channel lock for long.
const maxBatch = 256

var (
	errNotInFlight = errors.New("ID not in flight")
	errNotOwner    = errors.New("client does not own message")
	errNoChannel   = errors.New("not subscribed")
)

// pump delivers messages to the client while it has RDY capacity, sends
// heartbeats, and times out in-flight messages. It writes messages into the
// output buffer and flushes when it has nothing more ready to send, so
// messages are batched under load and sent at once when idle.
func (c *client) pump() {
	defer close(c.pumpDone)

	var heartbeat *time.Ticker
	var heartbeatC <-chan time.Time
	var heartbeatNS int64
	defer func() {
		if heartbeat != nil {
			heartbeat.Stop()
		}
	}()

	timeout := time.NewTimer(time.Hour)
	timeout.Stop()
	defer timeout.Stop()
	var timeoutAt int64 // when the timer fires; 0 when not armed

	dirty := false
	diskDry := true // the channel's fromDisk was empty at the last pop

	for {
		if hb := c.heartbeatNS.Load(); hb != heartbeatNS {
			heartbeatNS = hb
			if heartbeat != nil {
				heartbeat.Stop()
				heartbeat, heartbeatC = nil, nil
			}
			if hb > 0 {
				heartbeat = time.NewTicker(time.Duration(hb))
				heartbeatC = heartbeat.C
			}
		}

		ch := c.channel.Load()
		capacity := c.readyCapacity()
		if capacity == 0 && c.locality != localityGlobal {
			ch.handOn() // others may be deferring to this client (topology.go)
		}
		if capacity > 0 && diskDry && ch.backend.Depth() > 0 {
			// Take the next record if the disk queue has it ready, so
			// pop can weigh its messages against memory's.
			select {
			case rec := <-ch.backend.ReadChan():
				c.takeRecord(ch, rec)
			default:
			}
		}
		if capacity > 0 {
			batch := c.batchFor(capacity)
			batch, diskDry = ch.pop(batch, min(capacity, maxBatch), c)
			c.batch = batch
			if len(batch) > 0 {
				if err := c.sendMessages(ch, batch); err != nil {
					c.close(closeWriteError, err)
					return
				}
				dirty = true
				timeoutAt = c.armTimeout(timeout, timeoutAt)
				continue
			}
		}
		if dirty {
			c.writeMu.Lock()
			err := c.flushLocked()
			c.writeMu.Unlock()
			if err != nil {
				c.close(closeWriteError, err)
				return
			}
			dirty = false
		}

		var backendC <-chan []byte
		if capacity > 0 {
			backendC = ch.backend.ReadChan()
		}
		select {
		case <-c.wake:
		case rec := <-backendC:
			c.takeRecord(ch, rec)
		case <-heartbeatC:
			if err := c.writeFrame(protocol.FrameTypeResponse, protocol.ResponseHeartbeat); err != nil {
				c.close(closeWriteError, err)
				return
			}
			dirty = false
		case <-timeout.C:
			timeoutAt = 0
			c.timeOutMessages(time.Now().UnixNano())
			timeoutAt = c.armTimeout(timeout, timeoutAt)
		case <-c.exit:
			return
		}
	}
}

// batchFor returns the pump's empty batch slice with room for capacity
// messages (at most maxBatch): a consumer with a small RDY count never
// holds a large one, and the pump's stack stays small while it waits.
func (c *client) batchFor(capacity int) []*message {
	want := min(capacity, maxBatch)
	if cap(c.batch) < want {
		c.batch = make([]*message, 0, want)
	}
	clear(c.batch) // drop the references to the last batch's messages
	return c.batch[:0]
}

// takeRecord hands the messages of a disk-queue record to the channel,
// where this pump (and any other client's) takes them next.
func (c *client) takeRecord(ch *Channel, rec []byte) {
	scratch := getWire(0)
	defer putWire(scratch)
	*scratch = ch.backend.Take(rec, *scratch)
	msgs := fromWire(*scratch)
	if err := ch.inflight.add(msgs); err != nil {
		ch.logger.Error("journaling messages read from disk", "err", err)
	}
	ch.pushFromDisk(msgs)
}

// armTimeout sets the timer for the earliest in-flight deadline unless it
// is already set for that time or earlier. Deadlines only move later
// (FIN, REQ and TOUCH remove or postpone), so a timer armed early just
// fires, finds nothing due, and is armed again.
func (c *client) armTimeout(t *time.Timer, at int64) int64 {
	c.mu.Lock()
	next := c.inFlight.nextDeadline()
	c.mu.Unlock()
	if next == 0 || (at != 0 && at <= next) {
		return at
	}
	t.Reset(time.Duration(next - time.Now().UnixNano()))
	return next
}

// sendMessages marks msgs in flight and writes them to the output buffer.
func (c *client) sendMessages(ch *Channel, msgs []*message) error {
	now := time.Now().UnixNano()
	rate := c.sampleRate.Load()
	deadline := now + c.msgTimeoutNS.Load()
	sent := msgs[:0]
	for _, m := range msgs {
		if !c.sample(rate) {
			continue // sampled out: removed from the channel, never sent
		}
		m.Attempts++
		m.deliveredAt = now
		m.deadline = deadline
		sent = append(sent, m)
	}
	if len(sent) == 0 {
		return nil
	}
	c.mu.Lock()
	for _, m := range sent {
		c.inFlight.add(m)
	}
	c.inFlightN.Store(int64(c.inFlight.len()))
	c.mu.Unlock()
	ch.inFlightCount.Add(int64(len(sent)))
	c.messageCount.Add(uint64(len(sent)))

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.startWriteLocked(); err != nil {
		return err
	}
	for _, m := range sent {
		out, err := c.reserveLocked(protocol.FrameHeaderSize + m.EncodedSize())
		if err != nil {
			return err
		}
		if err := c.appendedLocked(protocol.AppendMessageFrame(out, &m.Message)); err != nil {
			return err
		}
		if c.unbuffered {
			if err := c.flushLocked(); err != nil {
				return err
			}
		}
	}
	return nil
}

// timeOutMessages requeues every in-flight message past its deadline.
func (c *client) timeOutMessages(now int64) {
	c.mu.Lock()
	expired := c.inFlight.expired(now, nil)
	c.inFlightN.Store(int64(c.inFlight.len()))
	c.mu.Unlock()
	if len(expired) == 0 {
		return
	}
	ch := c.channel.Load()
	ch.inFlightCount.Add(-int64(len(expired)))
	ch.timeoutCount.Add(uint64(len(expired)))
	for _, m := range expired {
		ch.requeue(m, 0)
	}
	c.wakeUp()
}

// takeInFlight removes the message with id from the client's in-flight set.
func (c *client) takeInFlight(id protocol.MessageID) (*message, *Channel, error) {
	ch := c.channel.Load()
	if ch == nil {
		return nil, nil, errNoChannel
	}
	c.mu.Lock()
	m := c.inFlight.remove(id)
	c.inFlightN.Store(int64(c.inFlight.len()))
	c.mu.Unlock()
	if m == nil {
		return nil, nil, ch.notInFlightError(c, id)
	}
	ch.inFlightCount.Add(-1)
	return m, ch, nil
}

// finish acknowledges a message (FIN).
func (c *client) finish(id protocol.MessageID) error {
	m, ch, err := c.takeInFlight(id)
	if err != nil {
		return err
	}
	ch.observeFinish(m)
	ch.inflight.done(m)
	c.finishCount.Add(1)
	c.wakeUp() // capacity freed
	return nil
}

// requeue hands a message back to the channel (REQ), now or after delay.
func (c *client) requeue(id protocol.MessageID, delay time.Duration) error {
	m, ch, err := c.takeInFlight(id)
	if err != nil {
		return err
	}
	c.requeueCount.Add(1)
	ch.requeueCount.Add(1)
	ch.requeue(m, delay)
	c.wakeUp()
	return nil
}

// touch resets a message's timeout to now + the client's msg timeout, but
// never past its delivery + maxMsgTimeout.
func (c *client) touch(id protocol.MessageID, maxMsgTimeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.inFlight.get(id)
	if m == nil {
		c.mu.Unlock()
		err := errNotInFlight
		if ch := c.channel.Load(); ch != nil {
			err = ch.notInFlightError(c, id)
		}
		c.mu.Lock()
		return err
	}
	deadline := time.Now().UnixNano() + c.msgTimeoutNS.Load()
	if limit := m.deliveredAt + int64(maxMsgTimeout); deadline > limit {
		deadline = limit
	}
	if deadline > m.deadline {
		c.inFlight.setDeadline(m, deadline)
	}
	return nil
}

// releaseAll runs after the pump has stopped: the client leaves its
// channel and every message it had in flight goes straight back to the
// channel, with its attempts, rather than waiting out its timeout.
func (c *client) releaseAll() {
	ch := c.channel.Load()
	if ch == nil {
		return
	}
	c.mu.Lock()
	msgs := c.inFlight.removeAll()
	c.inFlightN.Store(0)
	c.mu.Unlock()
	ch.inFlightCount.Add(-int64(len(msgs)))
	for _, m := range msgs {
		ch.requeue(m, 0)
	}
	ch.removeClient(c)
}

// dropInFlight forgets every in-flight message: the channel was emptied.
func (c *client) dropInFlight() {
	c.mu.Lock()
	n := c.inFlight.len()
	c.inFlight.removeAll()
	c.inFlightN.Store(0)
	c.mu.Unlock()
	if ch := c.channel.Load(); ch != nil {
		ch.inFlightCount.Add(-int64(n))
	}
}

// notInFlightError says why c cannot act on id: another client of the
// channel has it in flight, or nobody does. Only on the error path.
func (ch *Channel) notInFlightError(c *client, id protocol.MessageID) error {
	for _, other := range ch.clientList() {
		if other == c {
			continue
		}
		other.mu.Lock()
		ok := other.inFlight.get(id) != nil
		other.mu.Unlock()
		if ok {
			return errNotOwner
		}
	}
	return errNotInFlight
}
