package broker

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"wren/broker/auth"
	"wren/protocol"
)

// v2Config is what a V2 connection needs from the broker's options: the
// limits it enforces and the TLS it offers. Built once per broker.
type v2Config struct {
	identifyLimits  protocol.IdentifyLimits
	maxRdyCount     int64
	maxMsgSize      int64
	maxBodySize     int64
	maxReqTimeout   time.Duration
	maxMsgTimeout   time.Duration
	maxDeflateLevel int
	tlsRequired     bool
	authRequired    bool
	tlsConfig       *tls.Config  // nil without --tls-cert
	auth            *auth.Client // nil without --auth-http-address; set by Start
	topology        topology
}

func newV2Config(opts *Options, limits protocol.IdentifyLimits) *v2Config {
	return &v2Config{
		identifyLimits:  limits,
		maxRdyCount:     opts.MaxRdyCount,
		maxMsgSize:      opts.MaxMsgSize,
		maxBodySize:     opts.MaxBodySize,
		maxReqTimeout:   opts.MaxReqTimeout,
		maxMsgTimeout:   opts.MaxMsgTimeout,
		maxDeflateLevel: opts.MaxDeflateLevel,
		tlsRequired:     opts.TLSRequired != TLSNotRequired,
		authRequired:    len(opts.AuthHTTPAddresses) > 0,
		topology:        newTopology(opts),
	}
}

// topicStore finds a topic by name, creating it if needed: all a V2
// connection needs of the broker's registry.
type topicStore interface {
	Topic(name string) (*Topic, error)
}

// v2Conn executes the commands of one V2 connection. It gets the limits,
// the topic store and its client, not the broker.
type v2Conn struct {
	cfg    *v2Config
	topics topicStore
	c      *client
}

// serveV2 runs one V2 connection after its magic has been read: this
// goroutine reads and executes commands until the connection ends (the
// pump starts at SUB), then hands in-flight messages back.
//
// The reader goroutine spends an idle connection's life blocked in a read,
// and the runtime cannot shrink a stack below twice what is in use there,
// so the frames under that read are kept small: setup and teardown are
// calls of their own, and readLoop hands each command to execCommand.
func (b *Broker) serveV2(conn net.Conn) {
	c := b.openClient(conn)
	v := &v2Conn{cfg: b.v2, topics: b, c: c}
	reason, err := v.readLoop()
	b.closeClient(c, reason, err)
}

// openClient registers a new client and starts its idle heartbeats.
func (b *Broker) openClient(conn net.Conn) *client {
	c := newClient(b.nextClientID.Add(1), conn, protocol.DefaultClientSettings(b.v2.identifyLimits), b.logger)
	b.addClient(c)
	c.logger.Debug("client connected")
	c.writeMu.Lock()
	c.startIdleHeartbeatsLocked()
	c.writeMu.Unlock()
	return c
}

// closeClient ends a client whose reader loop stopped for reason. A
// connection closed from elsewhere first (channel deleted, broker
// shutdown, a failed write by the pump) keeps that reason, not the read
// error it caused.
func (b *Broker) closeClient(c *client, reason closeReason, err error) {
	c.close(reason, err)
	c.waitPump()
	c.releaseAll()
	c.releaseBuffers()
	b.removeClient(c)
}

// readLoop reads commands until the connection fails or a command is
// fatal, and says why it stopped.
func (v *v2Conn) readLoop() (closeReason, error) {
	c := v.c
	var paramsArray [4][]byte
	params := paramsArray[:0]
	for {
		c.commandStarting = true // its deadline is set by its first socket read
		line, err := c.reader.readLine()
		if err != nil {
			return c.readFailed(err)
		}
		cmd := protocol.ParseCommandLine(line, params)
		params = cmd.Params
		if reason, err := v.execCommand(cmd); reason != closeNone {
			return reason, err
		}
	}
}

// readFailed classifies a failed read of a command line.
func (c *client) readFailed(err error) (closeReason, error) {
	if errors.Is(err, io.EOF) {
		return closeClientQuit, nil
	}
	if errors.Is(err, errLineFull) {
		perr := protocol.NewError(protocol.CodeInvalid, "command line too long")
		_ = c.writeError(perr)
		return closeProtocolError, perr
	}
	reason := readCloseReason(err)
	if reason == closeHeartbeatTimeout && c.reader.buffered() > 0 {
		reason = closeSlowCommand // part of a line came, not the rest
	}
	return reason, err
}

// execCommand executes one command and writes its response or error. It
// returns closeNone, or why the connection must close.
func (v *v2Conn) execCommand(cmd protocol.Command) (closeReason, error) {
	c := v.c
	resp, perr := v.exec(cmd)
	if perr != nil {
		c.logger.Debug("command failed", "err", perr)
		writeErr := c.writeError(perr)
		switch {
		case perr.Fatal && errors.As(perr, new(tlsHandshakeError)):
			return closeTLSHandshake, perr
		case perr.Fatal && errors.Is(perr, os.ErrDeadlineExceeded):
			return closeSlowBody, perr // the command's deadline passed mid-body
		case perr.Fatal:
			return closeProtocolError, perr
		case writeErr != nil:
			return closeWriteError, writeErr
		}
		return closeNone, nil
	}
	if resp != nil {
		if err := c.writeResponse(resp); err != nil {
			return closeWriteError, err
		}
	}
	return closeNone, nil
}

func (v *v2Conn) exec(cmd protocol.Command) ([]byte, *protocol.Error) {
	c := v.c
	name := cmd.Name
	if string(name) == "IDENTIFY" {
		return v.identify()
	}
	if v.cfg.tlsRequired && c.tlsState == nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "cannot %s in current state (TLS required)", name)
	}
	p := cmd.Params
	switch string(name) {
	case "FIN":
		return v.fin(p)
	case "RDY":
		return v.rdy(p)
	case "REQ":
		return v.req(p)
	case "PUB":
		return v.pub(p)
	case "MPUB":
		return v.mpub(p)
	case "DPUB":
		return v.dpub(p)
	case "NOP":
		return nil, nil
	case "TOUCH":
		return v.touch(p)
	case "SUB":
		return v.sub(p)
	case "CLS":
		return v.cls()
	case "AUTH":
		return v.auth(p)
	}
	return nil, protocol.Errorf(protocol.CodeInvalid, "invalid command %s", name)
}

// readBody reads a size-prefixed body for command cmd; code is the error
// code for a bad size. what names the body in messages ("body" or
// "message body"); max bounds the size.
func readBody(c *client, cmd, code, what string, max int64) ([]byte, *protocol.Error) {
	return readBodyInto(c, nil, cmd, code, what, max)
}

// readBodyInto is readBody reading into buf when it has room for the body.
func readBodyInto(c *client, buf []byte, cmd, code, what string, max int64) ([]byte, *protocol.Error) {
	size, err := c.reader.readSize()
	if err != nil {
		return nil, protocol.Errorf(code, "%s failed to read %s size", cmd, what).Wrap(err)
	}
	if size <= 0 {
		return nil, protocol.Errorf(code, "%s invalid %s size %d", cmd, what, size)
	}
	if int64(size) > max {
		tooBig := "body"
		if what == "message body" {
			tooBig = "message"
		}
		return nil, protocol.Errorf(code, "%s %s too big %d > %d", cmd, tooBig, size, max)
	}
	body, err := c.appendBody(buf[:0], int(size))
	if err != nil {
		return nil, protocol.Errorf(code, "%s failed to read %s", cmd, what).Wrap(err)
	}
	return body, nil
}

func (v *v2Conn) identify() ([]byte, *protocol.Error) {
	c := v.c
	// nsqd leaves the state at init after IDENTIFY, so a client may send
	// it again; upgrades already in place are not applied twice.
	if c.state.Load() != stateInit {
		return nil, protocol.NewError(protocol.CodeInvalid, "cannot IDENTIFY in current state")
	}
	size, err := c.reader.readSize()
	if err != nil {
		return nil, protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to read body size").Wrap(err)
	}
	if int64(size) > v.cfg.maxBodySize {
		return nil, protocol.Errorf(protocol.CodeBadBody, "IDENTIFY body too big %d > %d", size, v.cfg.maxBodySize)
	}
	if size <= 0 {
		return nil, protocol.Errorf(protocol.CodeBadBody, "IDENTIFY invalid body size %d", size)
	}
	body, err := c.appendBody(nil, int(size))
	if err != nil {
		return nil, protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to read body").Wrap(err)
	}
	data, perr := protocol.ParseIdentify(body)
	if perr != nil {
		return nil, perr
	}
	settings, perr := data.Settings(v.cfg.identifyLimits)
	if perr != nil {
		return nil, perr
	}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	defer c.publishInfoLocked() // for /stats, with the TLS state if upgraded
	// Identity and settings change under writeMu.
	if data.ClientID != "" {
		c.clientID = data.ClientID
	}
	if data.Hostname != "" {
		c.hostname = data.Hostname
	}
	c.userAgent = data.UserAgent
	c.topologyRegion, c.topologyZone = data.TopologyRegion, data.TopologyZone
	c.locality = v.cfg.topology.localityOf(data.TopologyRegion, data.TopologyZone)
	c.applySettingsLocked(settings)
	c.startIdleHeartbeatsLocked() // at the new interval; IDENTIFY comes before SUB
	if !data.FeatureNegotiation {
		if err := c.writeResponseLocked(protocol.ResponseOK); err != nil {
			return nil, identifyFailed(err)
		}
		return nil, nil
	}
	resp, _ := json.Marshal(protocol.IdentifyResponse{
		MaxRdyCount:         v.cfg.maxRdyCount,
		Version:             protocol.NSQVersion,
		MaxMsgTimeout:       v.cfg.maxMsgTimeout.Milliseconds(),
		MsgTimeout:          settings.MsgTimeout.Milliseconds(),
		TLSv1:               settings.TLS,
		Deflate:             settings.Deflate,
		DeflateLevel:        settings.DeflateLevel,
		MaxDeflateLevel:     v.cfg.maxDeflateLevel,
		Snappy:              settings.Snappy,
		SampleRate:          settings.SampleRate,
		AuthRequired:        v.cfg.authRequired,
		OutputBufferSize:    reportedBufferSize(data.OutputBufferSize, settings.OutputBufferSize),
		OutputBufferTimeout: settings.OutputBufferTimeout.Milliseconds(),
		TopologyRegion:      v.cfg.topology.region,
		TopologyZone:        v.cfg.topology.zone,
	})
	if err := c.writeResponseLocked(resp); err != nil {
		return nil, identifyFailed(err)
	}
	if settings.TLS && c.tlsState == nil {
		c.logger.Info("upgrading connection to TLS")
		if err := c.upgradeTLS(v.cfg.tlsConfig); err != nil {
			return nil, identifyFailed(tlsHandshakeError{err})
		}
		if err := c.writeResponseLocked(protocol.ResponseOK); err != nil {
			return nil, identifyFailed(err)
		}
	}
	if settings.Snappy && c.flusher == nil {
		c.logger.Info("upgrading connection to snappy")
		c.upgradeSnappy()
		if err := c.writeResponseLocked(protocol.ResponseOK); err != nil {
			return nil, identifyFailed(err)
		}
	}
	if settings.Deflate && c.flusher == nil {
		c.logger.Info("upgrading connection to deflate", "level", settings.DeflateLevel)
		c.upgradeDeflate(settings.DeflateLevel)
		if err := c.writeResponseLocked(protocol.ResponseOK); err != nil {
			return nil, identifyFailed(err)
		}
	}
	return nil, nil
}

// reportedBufferSize is the output_buffer_size IDENTIFY reports: nsqd
// reports 1 for an unbuffered client (-1).
func reportedBufferSize(asked, size int) int {
	if asked == -1 {
		return 1
	}
	return size
}

func identifyFailed(err error) *protocol.Error {
	return protocol.NewError(protocol.CodeIdentifyFailed, "IDENTIFY failed "+err.Error()).Wrap(err)
}

// writeResponseLocked writes and flushes a response frame; c.writeMu must
// be held.
func (c *client) writeResponseLocked(data []byte) error {
	return c.writeFrameLocked(protocol.FrameTypeResponse, data)
}

func (v *v2Conn) sub(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	if c.state.Load() != stateInit {
		return nil, protocol.NewError(protocol.CodeInvalid, "cannot SUB in current state")
	}
	if c.heartbeatNS.Load() <= 0 {
		return nil, protocol.NewError(protocol.CodeInvalid, "cannot SUB with heartbeats disabled")
	}
	if len(p) < 2 {
		return nil, protocol.NewError(protocol.CodeInvalid, "SUB insufficient number of parameters")
	}
	topicName, channelName := string(p[0]), string(p[1])
	if !protocol.IsValidTopicName(topicName) {
		return nil, protocol.Errorf(protocol.CodeBadTopic, "SUB topic name %q is not valid", topicName)
	}
	if !protocol.IsValidChannelName(channelName) {
		return nil, protocol.Errorf(protocol.CodeBadChannel, "SUB channel name %q is not valid", channelName)
	}
	if perr := v.checkAuth("SUB", topicName, channelName); perr != nil {
		return nil, perr
	}
	// An ephemeral channel or topic may be deleted between lookup and
	// adding the client; then try once more with a fresh one.
	for attempt := 0; ; attempt++ {
		topic, err := v.topics.Topic(topicName)
		var ch *Channel
		if err == nil {
			ch, err = topic.Channel(channelName)
		}
		if err == nil {
			err = ch.addClient(c)
		}
		if err == nil {
			c.channel.Store(ch)
			c.state.Store(stateSubscribed)
			c.startPump()
			return protocol.ResponseOK, nil
		}
		if !errors.Is(err, errExiting) {
			return nil, protocol.NewError(protocol.CodeSubFailed, "SUB failed "+err.Error())
		}
		if attempt > 0 {
			return nil, protocol.NewError(protocol.CodeSubFailed, "SUB failed to deleted topic/channel")
		}
	}
}

func (v *v2Conn) rdy(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	state := c.state.Load()
	if state == stateClosing {
		return nil, nil
	}
	if state != stateSubscribed {
		return nil, protocol.NewError(protocol.CodeInvalid, "cannot RDY in current state")
	}
	count := int64(1)
	if len(p) > 0 {
		n, err := protocol.ParseBase10(p[0])
		if err != nil {
			return nil, protocol.Errorf(protocol.CodeInvalid, "RDY could not parse count %s", p[0])
		}
		count = n
	}
	if count < 0 || count > v.cfg.maxRdyCount {
		return nil, protocol.Errorf(protocol.CodeInvalid, "RDY count %d out of range 0-%d", count, v.cfg.maxRdyCount)
	}
	c.rdy.Store(count)
	c.wakeUp()
	return nil, nil
}

func messageID(p []byte) (protocol.MessageID, *protocol.Error) {
	var id protocol.MessageID
	if len(p) != protocol.MsgIDLength {
		return id, protocol.NewError(protocol.CodeInvalid, "invalid message ID")
	}
	copy(id[:], p)
	return id, nil
}

// inFlightCommand checks the state and parameters shared by FIN, REQ and
// TOUCH and returns the message ID.
func inFlightCommand(c *client, cmd string, p [][]byte, nparams int) (protocol.MessageID, *protocol.Error) {
	state := c.state.Load()
	if state != stateSubscribed && state != stateClosing {
		return protocol.MessageID{}, protocol.Errorf(protocol.CodeInvalid, "cannot %s in current state", cmd)
	}
	if len(p) < nparams {
		return protocol.MessageID{}, protocol.Errorf(protocol.CodeInvalid, "%s insufficient number of params", cmd)
	}
	return messageID(p[0])
}

func (v *v2Conn) fin(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	id, perr := inFlightCommand(c, "FIN", p, 1)
	if perr != nil {
		return nil, perr
	}
	if err := c.finish(id); err != nil {
		return nil, protocol.Errorf(protocol.CodeFinFailed, "FIN %s failed %s", string(id[:]), err)
	}
	return nil, nil
}

func (v *v2Conn) req(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	id, perr := inFlightCommand(c, "REQ", p, 2)
	if perr != nil {
		return nil, perr
	}
	ms, err := protocol.ParseBase10(p[1])
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "REQ could not parse timeout %s", p[1])
	}
	delay := time.Duration(ms) * time.Millisecond
	if ms > int64(v.cfg.maxReqTimeout/time.Millisecond) {
		delay = v.cfg.maxReqTimeout
	}
	if err := c.requeue(id, delay); err != nil {
		return nil, protocol.Errorf(protocol.CodeReqFailed, "REQ %s failed %s", string(id[:]), err)
	}
	return nil, nil
}

func (v *v2Conn) touch(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	id, perr := inFlightCommand(c, "TOUCH", p, 1)
	if perr != nil {
		return nil, perr
	}
	if err := c.touch(id, v.cfg.maxMsgTimeout); err != nil {
		return nil, protocol.Errorf(protocol.CodeTouchFailed, "TOUCH %s failed %s", string(id[:]), err)
	}
	return nil, nil
}

func (v *v2Conn) cls() ([]byte, *protocol.Error) {
	c := v.c
	if c.state.Load() != stateSubscribed {
		return nil, protocol.NewError(protocol.CodeInvalid, "cannot CLS in current state")
	}
	c.state.Store(stateClosing)
	c.rdy.Store(0)
	return protocol.ResponseCloseWait, nil
}

func pubTopic(cmd string, p [][]byte, nparams int) (string, *protocol.Error) {
	if len(p) < nparams {
		return "", protocol.Errorf(protocol.CodeInvalid, "%s insufficient number of parameters", cmd)
	}
	name := string(p[0])
	if !protocol.IsValidTopicName(name) {
		return "", protocol.Errorf(protocol.CodeBadTopic, "%s topic name %q is not valid", cmd, name)
	}
	return name, nil
}

func (v *v2Conn) pub(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	name, perr := pubTopic("PUB", p, 1)
	if perr != nil {
		return nil, perr
	}
	body, perr := readBody(c, "PUB", protocol.CodeBadMessage, "message body", v.cfg.maxMsgSize)
	if perr != nil {
		return nil, perr
	}
	if perr := v.checkAuth("PUB", name, ""); perr != nil {
		return nil, perr
	}
	if _, err := v.publish(name, [][]byte{body}, 0); err != nil {
		return nil, protocol.NewError(protocol.CodePubFailed, "PUB failed "+err.Error()).Wrap(err)
	}
	return protocol.ResponseOK, nil
}

func (v *v2Conn) mpub(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	name, perr := pubTopic("MPUB", p, 1)
	if perr != nil {
		return nil, perr
	}
	if perr := v.checkAuth("MPUB", name, ""); perr != nil {
		return nil, perr
	}
	buf := mpubBuffers.Get().(*mpubBuffer)
	defer buf.release()
	body, perr := readBodyInto(c, buf.body, "MPUB", protocol.CodeBadBody, "body", v.cfg.maxBodySize)
	if perr != nil {
		return nil, perr
	}
	if body, perr = v.readMPUBRest(body); perr != nil {
		return nil, perr
	}
	buf.body = body
	buf.bodies, perr = protocol.AppendMPUB(buf.bodies[:0], body, v.cfg.maxMsgSize, v.cfg.maxBodySize)
	if perr != nil {
		return nil, perr
	}
	kept, err := v.publish(name, buf.bodies, 0)
	buf.kept = kept
	if err != nil {
		return nil, protocol.NewError(protocol.CodeMPubFailed, "MPUB failed "+err.Error()).Wrap(err)
	}
	return protocol.ResponseOK, nil
}

// readMPUBRest reads what an MPUB body holds past its declared size:
// clients that declare only the message bytes (nsq.js, segmentio's
// nsq-go) send the count and the sizes besides, and nsqd reads the
// messages by their own sizes. Nothing past the last message is read.
func (v *v2Conn) readMPUBRest(body []byte) ([]byte, *protocol.Error) {
	var scan protocol.MPUBScanner
	for {
		need, perr := scan.Need(body, v.cfg.maxMsgSize, v.cfg.maxBodySize)
		if perr != nil || need == 0 {
			return body, perr
		}
		var err error
		if body, err = v.c.appendBody(body, need); err != nil {
			return nil, protocol.NewError(protocol.CodeBadMessage, "MPUB failed to read message body").Wrap(err)
		}
	}
}

// mpubBuffer is what an MPUB is read into. Both slices go back to
// mpubBuffers after the publish, except a body that messages kept in
// memory still refer to: that one is left to them. A batch that goes
// to disk (a full memory queue, --mem-queue-size=0) thus allocates
// nothing for its body.
type mpubBuffer struct {
	body   []byte
	bodies [][]byte
	kept   bool
}

// maxPooledMPUB bounds the bodies kept for reuse.
const maxPooledMPUB = 1 << 20

var mpubBuffers = sync.Pool{New: func() any { return new(mpubBuffer) }}

func (b *mpubBuffer) release() {
	clear(b.bodies)
	b.bodies = b.bodies[:0]
	if b.kept || cap(b.body) > maxPooledMPUB {
		b.body = nil
	}
	b.kept = false
	mpubBuffers.Put(b)
}

func (v *v2Conn) dpub(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	name, perr := pubTopic("DPUB", p, 2)
	if perr != nil {
		return nil, perr
	}
	ms, err := protocol.ParseBase10(p[1])
	if err != nil {
		return nil, protocol.Errorf(protocol.CodeInvalid, "DPUB could not parse timeout %s", p[1])
	}
	maxMS := int64(v.cfg.maxReqTimeout / time.Millisecond)
	if ms > maxMS {
		return nil, protocol.Errorf(protocol.CodeInvalid, "DPUB timeout %d out of range 0-%d", ms, maxMS)
	}
	body, perr := readBody(c, "DPUB", protocol.CodeBadMessage, "message body", v.cfg.maxMsgSize)
	if perr != nil {
		return nil, perr
	}
	if perr := v.checkAuth("DPUB", name, ""); perr != nil {
		return nil, perr
	}
	if _, err := v.publish(name, [][]byte{body}, time.Duration(ms)*time.Millisecond); err != nil {
		return nil, protocol.NewError(protocol.CodeDPubFailed, "DPUB failed "+err.Error()).Wrap(err)
	}
	return protocol.ResponseOK, nil
}

// publish queues bodies on the named topic and counts them for /stats. It
// reports whether any message kept a reference to the bodies.
func (v *v2Conn) publish(topicName string, bodies [][]byte, delay time.Duration) (kept bool, err error) {
	c := v.c
	topic, err := v.topics.Topic(topicName)
	if err != nil {
		return false, err
	}
	if kept, err = topic.publish(bodies, delay); err != nil {
		return kept, err
	}
	c.mu.Lock()
	if c.pubCounts == nil {
		c.pubCounts = make(map[string]uint64)
	}
	c.pubCounts[topicName] += uint64(len(bodies))
	c.mu.Unlock()
	return kept, nil
}
