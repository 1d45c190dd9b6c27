package lookup

// One V1 peer connection, answering as nsqlookupd v1.3.0 does, byte for
// byte: every command gets one reply, [int32 size][data]; every error is
// sent the same way as "E_CODE description" and then closes the
// connection. There are no read or write deadlines, as in nsqlookupd: a
// quiet broker stays registered and is only hidden from /lookup once it
// has not pinged for the inactive-producer timeout. The protocol is strict
// request/response with nothing sent unasked, so the reading goroutine
// writes the replies itself and needs no pump.

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"

	"wren/protocol"
)

const (
	// maxIdentifyBodySize bounds IDENTIFY's body. nsqlookupd has no bound
	// (and crashes on a negative size); a real IDENTIFY is ~150 bytes.
	maxIdentifyBodySize = 1 << 20
	// readBufferSize bounds a command line; the longest valid one,
	// REGISTER with two 64-byte names, is 140 bytes.
	readBufferSize = 4096
)

// peerConn is one TCP connection from a broker.
type peerConn struct {
	conn      net.Conn
	remote    string
	logger    *slog.Logger
	peer      *peer // set by IDENTIFY; used only by the connection's goroutine
	closeOnce sync.Once
}

// close closes the connection once, logging why; safe to call from any
// goroutine and more than once.
func (c *peerConn) close(reason string) {
	c.closeOnce.Do(func() {
		_ = c.conn.Close()
		c.logger.Info("lookup peer closed", "remote", c.remote, "reason", reason)
	})
}

// handleTCP serves one connection, then removes every registration its
// peer made.
func (l *Lookup) handleTCP(conn net.Conn) {
	c := &peerConn{conn: conn, remote: conn.RemoteAddr().String(), logger: l.logger}
	if !l.addConn(c) {
		_ = conn.Close()
		return
	}
	defer l.removeConn(c)
	l.logger.Info("lookup peer connected", "remote", c.remote)
	c.close(l.serveV1(c))
	if c.peer != nil {
		for _, reg := range l.registry.removePeer(c.peer.id) {
			l.logger.Info("lookup unregistered", "remote", c.remote, "category", reg.category, "key", reg.key, "subkey", reg.subkey)
		}
	}
}

// serveV1 reads the magic and then commands until an error, and returns
// the reason the connection ends.
func (l *Lookup) serveV1(c *peerConn) string {
	var magic [len(protocol.MagicV1)]byte
	if _, err := io.ReadFull(c.conn, magic[:]); err != nil {
		return "failed to read protocol magic: " + err.Error()
	}
	if string(magic[:]) != protocol.MagicV1 {
		l.logger.Error("lookup peer sent bad protocol magic", "remote", c.remote, "magic", string(magic[:]))
		_, _ = c.conn.Write(protocol.AppendV1Response(nil, []byte(protocol.CodeBadProtocol)))
		return "bad protocol magic"
	}
	r := bufio.NewReaderSize(c.conn, readBufferSize)
	params := make([][]byte, 0, 4)
	var out []byte
	for {
		cmd, err := protocol.ReadV1Command(r, params)
		var reply []byte
		var perr *protocol.Error
		switch {
		case errors.Is(err, protocol.ErrLineTooLong):
			perr = protocol.NewError(protocol.CodeInvalid, "command line too long")
		case err != nil:
			if errors.Is(err, io.EOF) {
				return "peer closed the connection"
			}
			return "read failed: " + err.Error()
		default:
			reply, perr = l.exec(c, r, cmd)
		}
		if perr != nil {
			l.logger.Error("lookup peer error", "remote", c.remote, "err", perr)
			out = protocol.AppendV1Error(out[:0], perr)
		} else {
			out = protocol.AppendV1Response(out[:0], reply)
		}
		if _, err := c.conn.Write(out); err != nil {
			return "write failed: " + err.Error()
		}
		if perr != nil {
			// Every V1 error closes the connection in nsqlookupd.
			return perr.Wire()
		}
	}
}

func (l *Lookup) exec(c *peerConn, r *bufio.Reader, cmd protocol.Command) ([]byte, *protocol.Error) {
	switch string(cmd.Name) {
	case "PING":
		if c.peer != nil {
			// A PING before IDENTIFY is answered but marks nothing.
			l.registry.touch(c.peer)
		}
		return protocol.ResponseOK, nil
	case "IDENTIFY":
		return l.identify(c, r)
	case "REGISTER":
		return l.register(c, cmd.Params)
	case "UNREGISTER":
		return l.unregister(c, cmd.Params)
	}
	return nil, protocol.Errorf(protocol.CodeInvalid, "invalid command %s", cmd.Name)
}

// identifyReply is the lookup's answer to IDENTIFY, in nsqlookupd's
// (alphabetical) key order.
type identifyReply struct {
	BroadcastAddress string `json:"broadcast_address"`
	Hostname         string `json:"hostname"`
	HTTPPort         int    `json:"http_port"`
	TCPPort          int    `json:"tcp_port"`
	Version          string `json:"version"`
}

func (l *Lookup) identify(c *peerConn, r *bufio.Reader) ([]byte, *protocol.Error) {
	if c.peer != nil {
		return nil, protocol.NewError(protocol.CodeInvalid, "cannot IDENTIFY again")
	}
	size, err := protocol.ReadV1BodySize(r, maxIdentifyBodySize)
	switch {
	case errors.Is(err, protocol.ErrBodySizeOutOfRange) && size == 0:
		// nsqlookupd reads the empty body and fails to decode it.
		return nil, protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to decode JSON body").Wrap(err)
	case errors.Is(err, protocol.ErrBodySizeOutOfRange) && size > 0:
		return nil, protocol.Errorf(protocol.CodeBadBody, "IDENTIFY body too big %d > %d", size, maxIdentifyBodySize)
	case errors.Is(err, protocol.ErrBodySizeOutOfRange):
		return nil, protocol.Errorf(protocol.CodeBadBody, "IDENTIFY invalid body size %d", size)
	case err != nil:
		return nil, protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to read body size").Wrap(err)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to read body").Wrap(err)
	}
	var info peerInfo
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, protocol.NewError(protocol.CodeBadBody, "IDENTIFY failed to decode JSON body").Wrap(err)
	}
	info.RemoteAddress = c.remote
	if info.BroadcastAddress == "" || info.TCPPort == 0 || info.HTTPPort == 0 || info.Version == "" {
		return nil, protocol.NewError(protocol.CodeBadBody, "IDENTIFY missing fields")
	}
	c.peer = &peer{id: c.remote, info: info}
	l.registry.identify(c.peer)
	l.logger.Info("lookup peer identified", "remote", c.remote, "broadcast_address", info.BroadcastAddress,
		"tcp_port", info.TCPPort, "http_port", info.HTTPPort, "version", info.Version)

	reply, err := json.Marshal(identifyReply{
		BroadcastAddress: l.opts.BroadcastAddress,
		Hostname:         l.hostname,
		HTTPPort:         port(l.HTTPAddr()),
		TCPPort:          port(l.TCPAddr()),
		Version:          protocol.NSQVersion,
	})
	if err != nil {
		// As nsqlookupd: the peer is identified; only the reply failed.
		l.logger.Error("encoding the IDENTIFY reply", "err", err)
		return protocol.ResponseOK, nil
	}
	return reply, nil
}

func (l *Lookup) register(c *peerConn, params [][]byte) ([]byte, *protocol.Error) {
	if c.peer == nil {
		return nil, protocol.NewError(protocol.CodeInvalid, "client must IDENTIFY")
	}
	topic, channel, perr := topicChannel("REGISTER", params)
	if perr != nil {
		return nil, perr
	}
	for _, reg := range l.registry.register(c.peer, topic, channel) {
		l.logger.Info("lookup registered", "remote", c.remote, "category", reg.category, "key", reg.key, "subkey", reg.subkey)
	}
	return protocol.ResponseOK, nil
}

func (l *Lookup) unregister(c *peerConn, params [][]byte) ([]byte, *protocol.Error) {
	if c.peer == nil {
		return nil, protocol.NewError(protocol.CodeInvalid, "client must IDENTIFY")
	}
	topic, channel, perr := topicChannel("UNREGISTER", params)
	if perr != nil {
		return nil, perr
	}
	for _, reg := range l.registry.unregister(c.peer.id, topic, channel) {
		l.logger.Info("lookup unregistered", "remote", c.remote, "category", reg.category, "key", reg.key, "subkey", reg.subkey)
	}
	return protocol.ResponseOK, nil
}

// topicChannel reads REGISTER's and UNREGISTER's "<topic> [channel]";
// parameters past the second are ignored, as in nsqlookupd.
func topicChannel(command string, params [][]byte) (topic, channel string, perr *protocol.Error) {
	if len(params) == 0 {
		return "", "", protocol.Errorf(protocol.CodeInvalid, "%s insufficient number of params", command)
	}
	topic = string(params[0])
	if len(params) >= 2 {
		channel = string(params[1])
	}
	if !protocol.IsValidTopicName(topic) {
		return "", "", protocol.Errorf(protocol.CodeBadTopic, "%s topic name '%s' is not valid", command, topic)
	}
	if channel != "" && !protocol.IsValidChannelName(channel) {
		return "", "", protocol.Errorf(protocol.CodeBadChannel, "%s channel name '%s' is not valid", command, channel)
	}
	return topic, channel, nil
}
