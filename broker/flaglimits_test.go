package broker

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"
)

// The client limits of IDENTIFY come from their flags: each bound lets
// its edge through and refuses one past it.
func TestV2IdentifyLimitsFromFlags(t *testing.T) {
	limits := func(o *Options) {
		o.MaxHeartbeatInterval = 2 * time.Second
		o.MaxOutputBufferSize = 1000
		o.MinOutputBufferTimeout = 100 * time.Millisecond
		o.MaxOutputBufferTimeout = time.Second
		o.MaxMsgTimeout = 90 * time.Second
	}
	identify := func(field string, value int) []byte {
		return rawCmd("IDENTIFY", []byte(`{"`+field+`":`+strconv.Itoa(value)+`}`))
	}
	runV2Cases(t, []v2Case{
		{name: "heartbeat at --max-heartbeat-interval", opts: limits, send: identify("heartbeat_interval", 2000), wantResp: "OK"},
		{name: "heartbeat past --max-heartbeat-interval", opts: limits, send: identify("heartbeat_interval", 2001),
			wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (2001) is invalid", closed: true},
		{name: "buffer at --max-output-buffer-size", opts: limits, send: identify("output_buffer_size", 1000), wantResp: "OK"},
		{name: "buffer past --max-output-buffer-size", opts: limits, send: identify("output_buffer_size", 1001),
			wantErr: "E_BAD_BODY IDENTIFY output buffer size (1001) is invalid", closed: true},
		{name: "timeout at --min-output-buffer-timeout", opts: limits, send: identify("output_buffer_timeout", 100), wantResp: "OK"},
		{name: "timeout under --min-output-buffer-timeout", opts: limits, send: identify("output_buffer_timeout", 99),
			wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (99) is invalid", closed: true},
		{name: "timeout past --max-output-buffer-timeout", opts: limits, send: identify("output_buffer_timeout", 1001),
			wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (1001) is invalid", closed: true},
		{name: "msg timeout past --max-msg-timeout", opts: limits, send: identify("msg_timeout", 90001),
			wantErr: "E_BAD_BODY IDENTIFY msg timeout (90001) is invalid", closed: true},
	})
}

// --broadcast-tcp-port and --broadcast-http-port are the ports the broker
// registers with its lookups, in place of the ones it listens on.
func TestLookupBroadcastPorts(t *testing.T) {
	l := startLookupForBroker(t)
	b := startTestBroker(t, func(o *Options) {
		o.LookupdTCPAddrs = []string{l.TCPAddr().String()}
		o.BroadcastTCPPort, o.BroadcastHTTPPort = 14150, 14151
	})
	if _, err := b.Topic("ports"); err != nil {
		t.Fatal(err)
	}
	var body struct {
		Producers []struct {
			TCPPort  int `json:"tcp_port"`
			HTTPPort int `json:"http_port"`
		} `json:"producers"`
	}
	waitFor(t, 5*time.Second, "the broker registered", func() bool {
		return lookupGet(t, l, "/lookup?topic=ports", &body) == 200 && len(body.Producers) == 1
	})
	if p := body.Producers[0]; p.TCPPort != 14150 || p.HTTPPort != 14151 {
		got, _ := json.Marshal(body)
		t.Fatalf("registered %s, want tcp_port 14150 and http_port 14151", got)
	}
}

// --node-id is the node part of every message ID: bits 12-21 of the
// 64-bit value the 16 hex characters spell.
func TestNodeIDInMessageIDs(t *testing.T) {
	b := startTestBroker(t, func(o *Options) { o.NodeID = 777 })
	subscribedChannel(t, b, "ids", "c")
	c := dialRaw(t, b)
	c.sendRaw(t, rawCmd("PUB", []byte("x"), "ids"))
	c.expectResponse(t, "OK")
	sub := dialRaw(t, b)
	sub.send(t, "SUB", nil, "ids", "c")
	sub.expectResponse(t, "OK")
	sub.send(t, "RDY", nil, "1")
	m := sub.expectMessage(t)
	id, err := strconv.ParseUint(string(m.ID[:]), 16, 64)
	if err != nil {
		t.Fatalf("message ID %q: %v", m.ID, err)
	}
	if node := id >> 12 & 0x3ff; node != 777 {
		t.Fatalf("message ID %q carries node %d, want 777", m.ID, node)
	}
}
