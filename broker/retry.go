package broker

import (
	"errors"
	"time"

	"wren/protocol"
)

// A message leaves the topic only once every channel has stored it. When a
// channel cannot (its disk queue fails to write, say the disk is full),
// the topic keeps that channel's copies here and its pump retries them,
// backing off from minRetryBackoff to maxRetryBackoff, until the channel
// stores them or is deleted. Channels that did store the messages keep
// theirs, so no channel gets a message twice.
//
// The rule for a publish that some channels store and others do not: it is
// acknowledged, and the channels that failed get their copies from here.
// Only a publish that no channel (and not the topic) stored at all fails,
// so a publisher's retry after an error never duplicates a message. While
// copies wait here, publishes queue at the topic instead of fanning out
// directly, and the pump moves no backlog, so the held copies are bounded
// by one batch per channel and failed publish.
//
// Topic.retryMu guards only the list: it may be taken under Topic.mu and
// is never held while a channel is called.
const (
	minRetryBackoff = 10 * time.Millisecond
	maxRetryBackoff = time.Second
)

// heldCopies are the messages one channel has yet to store.
type heldCopies struct {
	ch   *Channel
	msgs []*message
}

// holdForRetry keeps msgs at the topic until ch stores them.
func (t *Topic) holdForRetry(ch *Channel, msgs []*message, err error) {
	if len(msgs) == 0 {
		return
	}
	t.retryMu.Lock()
	t.retry = append(t.retry, heldCopies{ch: ch, msgs: msgs})
	t.retryHeld.Add(int64(len(msgs)))
	t.retryMu.Unlock()
	t.logger.Error("channel could not store messages; the topic keeps them and retries",
		"channel", ch.name, "messages", len(msgs), "err", err)
	t.wakePump()
}

// retryHeldCopies gives each channel its held copies again, oldest first, and
// reports whether any are still held. A deleted channel's are dropped.
func (t *Topic) retryHeldCopies() (stillHeld bool) {
	t.retryMu.Lock()
	pending := t.retry
	t.retry = nil
	t.retryMu.Unlock()
	var kept []heldCopies
	var failing map[*Channel]bool
	for _, h := range pending {
		if failing[h.ch] {
			// Keep a channel's copies in order: none past one that failed.
			kept = append(kept, h)
			continue
		}
		failed, err := h.ch.put(h.msgs)
		t.retryHeld.Add(-int64(len(h.msgs) - len(failed)))
		switch {
		case errors.Is(err, errExiting):
			t.retryHeld.Add(-int64(len(failed)))
		case len(failed) > 0:
			t.logger.Warn("channel still cannot store held messages", "channel", h.ch.name,
				"messages", len(failed), "err", err)
			kept = append(kept, heldCopies{ch: h.ch, msgs: failed})
			if failing == nil {
				failing = make(map[*Channel]bool)
			}
			failing[h.ch] = true
		}
	}
	if len(kept) == 0 {
		t.retryMu.Lock()
		stillHeld = len(t.retry) > 0
		t.retryMu.Unlock()
		return stillHeld
	}
	t.retryMu.Lock()
	t.retry = append(kept, t.retry...)
	t.retryMu.Unlock()
	return true
}

// takeHeldCopies removes and returns every held copy (for shutdown and
// deletion).
func (t *Topic) takeHeldCopies() []heldCopies {
	t.retryMu.Lock()
	defer t.retryMu.Unlock()
	out := t.retry
	t.retry = nil
	t.retryHeld.Store(0)
	return out
}

// copyMessages copies wire, bodies included, into messages of their own:
// wire's bodies belong to the publisher's buffer.
func copyMessages(wire []protocol.Message) []*message {
	size := 0
	for i := range wire {
		size += len(wire[i].Body)
	}
	bodies := make([]byte, 0, size)
	backing := make([]message, len(wire))
	out := make([]*message, len(wire))
	for i := range wire {
		start := len(bodies)
		bodies = append(bodies, wire[i].Body...)
		backing[i] = message{Message: wire[i]}
		backing[i].Body = bodies[start:len(bodies):len(bodies)]
		out[i] = &backing[i]
	}
	return out
}
