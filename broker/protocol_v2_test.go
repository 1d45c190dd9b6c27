package broker

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"wren/protocol"
)

// The expected texts below are nsqd v1.3.0's, byte for byte, except where a
// row's comment says how and why wren deliberately differs.

// rawUnknownID is a well-formed message ID that is never in flight.
const rawUnknownID = "0000000000000000"

// v2Step prepares the connection under test before its bytes are sent.
type v2Step func(t *testing.T, b *Broker, c *rawClient)

// v2Case is one row of a V2 command table: after setup, send is written as
// is; the server must answer with wantResp (if set) and then wantErr (if
// set), and then close the connection or keep serving it.
type v2Case struct {
	name     string
	opts     func(*Options) // a broker of its own with these options
	noMagic  bool           // send is the very first thing on the connection
	setup    []v2Step
	send     []byte
	wantResp string
	wantErr  string
	closed   bool
}

// stepIdentify sends IDENTIFY with a raw JSON body and expects a response.
func stepIdentify(jsonBody string) v2Step {
	return func(t *testing.T, b *Broker, c *rawClient) {
		t.Helper()
		c.send(t, "IDENTIFY", []byte(jsonBody))
		if frameType, data := c.mustReadFrame(t); frameType != protocol.FrameTypeResponse {
			t.Fatalf("setup IDENTIFY %s: got frame type %d %q", jsonBody, frameType, data)
		}
	}
}

// stepCmd sends a command and expects the response want, or no reply when
// want is empty (checked by the NOP+PUB round trip of expectAlive).
func stepCmd(want, name string, body []byte, params ...string) v2Step {
	return func(t *testing.T, b *Broker, c *rawClient) {
		t.Helper()
		c.send(t, name, body, params...)
		if want == "" {
			c.expectAlive(t)
			return
		}
		c.expectResponse(t, want)
	}
}

func stepSub(topic, channel string) v2Step { return stepCmd("OK", "SUB", nil, topic, channel) }

var stepCLS = stepCmd("CLOSE_WAIT", "CLS", nil)

// stepOtherSub subscribes a second connection to topic/channel.
func stepOtherSub(topic, channel string) v2Step {
	return func(t *testing.T, b *Broker, _ *rawClient) {
		t.Helper()
		other := dialRaw(t, b)
		stepSub(topic, channel)(t, b, other)
	}
}

// rawCmd is a command line with its size-prefixed body (none if body is nil).
func rawCmd(name string, body []byte, params ...string) []byte {
	return protocol.AppendCommand(nil, name, body, params...)
}

func rawIdentifyCmd(jsonBody string) []byte { return rawCmd("IDENTIFY", []byte(jsonBody)) }

// runV2Cases runs each row on a fresh connection, to a broker shared by the
// rows without options of their own.
func runV2Cases(t *testing.T, cases []v2Case) {
	t.Helper()
	shared := v2SharedBroker(t, len(cases), func(i int) bool { return cases[i].opts == nil })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := shared
			if tc.opts != nil {
				b = startTestBroker(t, tc.opts)
			}
			var c *rawClient
			if tc.noMagic {
				c = dialRawNoMagic(t, b)
			} else {
				c = dialRaw(t, b)
			}
			for _, step := range tc.setup {
				step(t, b, c)
			}
			c.sendRaw(t, tc.send)
			if tc.wantResp != "" {
				c.expectResponse(t, tc.wantResp)
			}
			if tc.wantErr != "" {
				c.expectError(t, tc.wantErr)
			}
			if tc.closed {
				c.expectClosed(t)
				expectBrokerServes(t, b)
			} else {
				c.expectAlive(t)
			}
		})
	}
}

// v2SharedBroker starts one default broker for a table's rows when any of
// its n rows (those for which usesShared holds) needs one; nil otherwise.
func v2SharedBroker(t *testing.T, n int, usesShared func(i int) bool) *Broker {
	t.Helper()
	for i := range n {
		if usesShared(i) {
			return startTestBroker(t, nil)
		}
	}
	return nil
}

// expectBrokerServes checks a new connection still works: IDENTIFY, and
// PUB unless TLS is required.
func expectBrokerServes(t *testing.T, b *Broker) {
	t.Helper()
	c := dialRaw(t, b)
	if resp := c.identify(t, map[string]any{"client_id": "survivor"}); string(resp) != "OK" {
		t.Fatalf("IDENTIFY on a new connection: got %q", resp)
	}
	if b.opts.TLSRequired == TLSNotRequired {
		c.send(t, "PUB", []byte("after"), "raw_survivor")
		c.expectResponse(t, "OK")
	}
}

func TestV2BasicErrors(t *testing.T) {
	runV2Cases(t, []v2Case{
		{name: "bad magic", noMagic: true, send: []byte("  V1"), wantErr: "E_BAD_PROTOCOL", closed: true},
		{name: "unknown command", send: rawLine("FOO"), wantErr: "E_INVALID invalid command FOO", closed: true},
		{name: "lower case command", send: rawLine("pub", "t"), wantErr: "E_INVALID invalid command pub", closed: true},
		{name: "empty line", send: []byte("\n"), wantErr: "E_INVALID invalid command ", closed: true},
		{name: "CRLF line endings", send: rawConcat([]byte("NOP\r\nPUB crlf_t\r\n"), rawSize(1), []byte("x")), wantResp: "OK"},
		{
			// Exactly the server's 16 KiB read buffer, so the server has
			// read everything when it closes and the close is a clean FIN.
			// nsqd closes without a word; wren says why.
			name:    "line fills the read buffer",
			send:    bytes.Repeat([]byte("x"), 16*1024),
			wantErr: "E_INVALID command line too long",
			closed:  true,
		},
	})
}

func TestV2Identify(t *testing.T) {
	runV2Cases(t, []v2Case{
		{name: "ok", send: rawIdentifyCmd(`{"client_id":"a","hostname":"h","user_agent":"raw/1"}`), wantResp: "OK"},
		{name: "unknown fields ignored", send: rawIdentifyCmd(`{"long_id":"x","whatever":[1,2]}`), wantResp: "OK"},
		{name: "snappy and deflate without negotiation", send: rawIdentifyCmd(`{"snappy":true,"deflate":true}`), wantResp: "OK"},
		{name: "heartbeat disabled", send: rawIdentifyCmd(`{"heartbeat_interval":-1}`), wantResp: "OK"},
		{name: "unbuffered", send: rawIdentifyCmd(`{"output_buffer_size":-1,"output_buffer_timeout":-1}`), wantResp: "OK"},
		{
			name:     "twice",
			setup:    []v2Step{stepIdentify(`{}`)},
			send:     rawIdentifyCmd(`{"client_id":"again"}`),
			wantResp: "OK",
		},
		{name: "after SUB", setup: []v2Step{stepSub("id_t", "c")}, send: rawLine("IDENTIFY"), wantErr: "E_INVALID cannot IDENTIFY in current state", closed: true},
		{name: "body size 0", send: rawWithBody("IDENTIFY", 0, nil), wantErr: "E_BAD_BODY IDENTIFY invalid body size 0", closed: true},
		{name: "body size negative", send: rawWithBody("IDENTIFY", -1, nil), wantErr: "E_BAD_BODY IDENTIFY invalid body size -1", closed: true},
		{name: "body too big", send: rawWithBody("IDENTIFY", 5242881, nil), wantErr: "E_BAD_BODY IDENTIFY body too big 5242881 > 5242880", closed: true},
		{name: "body size 0x7fffffff", send: rawWithBody("IDENTIFY", 0x7fffffff, nil), wantErr: "E_BAD_BODY IDENTIFY body too big 2147483647 > 5242880", closed: true},
		{name: "body size 0xffffffff", send: rawWithBody("IDENTIFY", 0xffffffff, nil), wantErr: "E_BAD_BODY IDENTIFY invalid body size -1", closed: true},
		{name: "bad JSON", send: rawIdentifyCmd(`{"client_id":`), wantErr: "E_BAD_BODY IDENTIFY failed to decode JSON body", closed: true},
		{name: "JSON of the wrong type", send: rawIdentifyCmd(`{"heartbeat_interval":"fast"}`), wantErr: "E_BAD_BODY IDENTIFY failed to decode JSON body", closed: true},
		{name: "heartbeat 100", send: rawIdentifyCmd(`{"heartbeat_interval":100}`), wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (100) is invalid", closed: true},
		{name: "heartbeat above max", send: rawIdentifyCmd(`{"heartbeat_interval":60001}`), wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid", closed: true},
		{name: "heartbeat -2", send: rawIdentifyCmd(`{"heartbeat_interval":-2}`), wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (-2) is invalid", closed: true},
		{name: "output buffer size 10", send: rawIdentifyCmd(`{"output_buffer_size":10}`), wantErr: "E_BAD_BODY IDENTIFY output buffer size (10) is invalid", closed: true},
		{name: "output buffer size above max", send: rawIdentifyCmd(`{"output_buffer_size":65537}`), wantErr: "E_BAD_BODY IDENTIFY output buffer size (65537) is invalid", closed: true},
		{name: "output buffer timeout 1", send: rawIdentifyCmd(`{"output_buffer_timeout":1}`), wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid", closed: true},
		{name: "output buffer timeout above max", send: rawIdentifyCmd(`{"output_buffer_timeout":30001}`), wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (30001) is invalid", closed: true},
		{
			name:    "output buffer timeout checked before size",
			send:    rawIdentifyCmd(`{"output_buffer_size":10,"output_buffer_timeout":1}`),
			wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid",
			closed:  true,
		},
		{name: "sample rate 100", send: rawIdentifyCmd(`{"sample_rate":100}`), wantErr: "E_BAD_BODY IDENTIFY sample rate (100) is invalid", closed: true},
		{name: "sample rate -1", send: rawIdentifyCmd(`{"sample_rate":-1}`), wantErr: "E_BAD_BODY IDENTIFY sample rate (-1) is invalid", closed: true},
		{name: "msg timeout 500", send: rawIdentifyCmd(`{"msg_timeout":500}`), wantErr: "E_BAD_BODY IDENTIFY msg timeout (500) is invalid", closed: true},
		{name: "msg timeout above max", send: rawIdentifyCmd(`{"msg_timeout":900001}`), wantErr: "E_BAD_BODY IDENTIFY msg timeout (900001) is invalid", closed: true},
		{
			name:    "snappy and deflate",
			send:    rawIdentifyCmd(`{"feature_negotiation":true,"snappy":true,"deflate":true}`),
			wantErr: "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression",
			closed:  true,
		},
	})
}

func TestV2IdentifyFeatureNegotiation(t *testing.T) {
	// nsqd's reply, field order included, with the defaults of v1.3.0 and
	// the topology fields of NSQ's master.
	reply := func(overrides ...string) string {
		fields := []string{
			`"max_rdy_count":2500`, `"version":"1.3.0"`, `"max_msg_timeout":900000`, `"msg_timeout":60000`,
			`"tls_v1":false`, `"deflate":false`, `"deflate_level":6`, `"max_deflate_level":6`, `"snappy":false`,
			`"sample_rate":0`, `"auth_required":false`, `"output_buffer_size":16384`, `"output_buffer_timeout":250`,
			`"topology_region":""`, `"topology_zone":""`,
		}
		for _, o := range overrides {
			key := o[:strings.Index(o, ":")+1]
			for i, f := range fields {
				if strings.HasPrefix(f, key) {
					fields[i] = o
				}
			}
		}
		return "{" + strings.Join(fields, ",") + "}"
	}
	cases := []struct {
		name string
		opts func(*Options)
		body string
		want string
	}{
		{name: "defaults", body: `{"feature_negotiation":true}`, want: reply()},
		{
			name: "client values",
			body: `{"feature_negotiation":true,"msg_timeout":5000,"sample_rate":50,"output_buffer_size":100,"output_buffer_timeout":1000,"heartbeat_interval":1000}`,
			want: reply(`"msg_timeout":5000`, `"sample_rate":50`, `"output_buffer_size":100`, `"output_buffer_timeout":1000`),
		},
		{
			name: "unbuffered",
			body: `{"feature_negotiation":true,"output_buffer_size":-1}`,
			want: reply(`"output_buffer_size":1`, `"output_buffer_timeout":0`),
		},
		{name: "no output buffer timeout", body: `{"feature_negotiation":true,"output_buffer_timeout":-1}`, want: reply(`"output_buffer_timeout":0`)},
		{name: "tls without a certificate", body: `{"feature_negotiation":true,"tls_v1":true}`, want: reply()},
		{name: "snappy", body: `{"feature_negotiation":true,"snappy":true}`, want: reply(`"snappy":true`)},
		{name: "deflate level clamped", body: `{"feature_negotiation":true,"deflate":true,"deflate_level":9}`, want: reply(`"deflate":true`)},
		{name: "deflate level below max", body: `{"feature_negotiation":true,"deflate":true,"deflate_level":2}`, want: reply(`"deflate":true`, `"deflate_level":2`)},
		{
			name: "compression disabled",
			opts: func(o *Options) { o.DeflateEnabled, o.SnappyEnabled = false, false },
			body: `{"feature_negotiation":true,"deflate":true,"deflate_level":2}`,
			want: reply(),
		},
		{
			name: "broker options",
			opts: func(o *Options) {
				o.MaxRdyCount = 10
				o.MaxMsgTimeout = 10 * time.Minute
				o.MsgTimeout = 30 * time.Second
				o.OutputBufferTimeout = 100 * time.Millisecond
				o.MaxDeflateLevel = 3
			},
			body: `{"feature_negotiation":true}`,
			want: reply(`"max_rdy_count":10`, `"max_msg_timeout":600000`, `"msg_timeout":30000`,
				`"output_buffer_timeout":100`, `"deflate_level":3`, `"max_deflate_level":3`),
		},
		{
			name: "topology",
			opts: func(o *Options) { o.TopologyRegion, o.TopologyZone = "eu", "eu-1a" },
			body: `{"feature_negotiation":true,"topology_region":"us","topology_zone":"us-1b"}`,
			want: reply(`"topology_region":"eu"`, `"topology_zone":"eu-1a"`),
		},
	}
	shared := v2SharedBroker(t, len(cases), func(i int) bool { return cases[i].opts == nil })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := shared
			if tc.opts != nil {
				b = startTestBroker(t, tc.opts)
			}
			c := dialRaw(t, b)
			c.send(t, "IDENTIFY", []byte(tc.body))
			if got := c.expectResponse(t, tc.want); string(got) != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestV2Sub(t *testing.T) {
	long := strings.Repeat("x", protocol.MaxNameLength+1)
	runV2Cases(t, []v2Case{
		{name: "ok", send: rawLine("SUB", "sub_t", "c"), wantResp: "OK"},
		{name: "ephemeral", send: rawLine("SUB", "sub_t#ephemeral", "c#ephemeral"), wantResp: "OK"},
		{name: "no params", send: rawLine("SUB"), wantErr: "E_INVALID SUB insufficient number of parameters", closed: true},
		{name: "no channel", send: rawLine("SUB", "sub_t"), wantErr: "E_INVALID SUB insufficient number of parameters", closed: true},
		{name: "bad topic", send: rawLine("SUB", "a*b", "c"), wantErr: `E_BAD_TOPIC SUB topic name "a*b" is not valid`, closed: true},
		{name: "topic too long", send: rawLine("SUB", long, "c"), wantErr: fmt.Sprintf("E_BAD_TOPIC SUB topic name %q is not valid", long), closed: true},
		{name: "bad channel", send: rawLine("SUB", "sub_t", `bad"chan`), wantErr: `E_BAD_CHANNEL SUB channel name "bad\"chan" is not valid`, closed: true},
		{name: "empty channel", send: []byte("SUB sub_t  c\n"), wantErr: `E_BAD_CHANNEL SUB channel name "" is not valid`, closed: true},
		{name: "twice", setup: []v2Step{stepSub("sub_t", "c")}, send: rawLine("SUB", "sub_t", "c2"), wantErr: "E_INVALID cannot SUB in current state", closed: true},
		{name: "state before params", setup: []v2Step{stepSub("sub_t", "c")}, send: rawLine("SUB"), wantErr: "E_INVALID cannot SUB in current state", closed: true},
		{name: "after CLS", setup: []v2Step{stepSub("sub_t", "c"), stepCLS}, send: rawLine("SUB", "sub_t", "c"), wantErr: "E_INVALID cannot SUB in current state", closed: true},
		{
			name:    "heartbeats disabled",
			setup:   []v2Step{stepIdentify(`{"heartbeat_interval":-1}`)},
			send:    rawLine("SUB", "sub_t", "c"),
			wantErr: "E_INVALID cannot SUB with heartbeats disabled",
			closed:  true,
		},
		{
			name:    "heartbeats checked before params",
			setup:   []v2Step{stepIdentify(`{"heartbeat_interval":-1}`)},
			send:    rawLine("SUB"),
			wantErr: "E_INVALID cannot SUB with heartbeats disabled",
			closed:  true,
		},
		{
			name:    "max channel consumers",
			opts:    func(o *Options) { o.MaxChannelConsumers = 1 },
			setup:   []v2Step{stepOtherSub("limited", "c")},
			send:    rawLine("SUB", "limited", "c"),
			wantErr: "E_SUB_FAILED SUB failed consumers for limited:c exceeds limit of 1",
			closed:  true,
		},
		{
			name:     "max channel consumers, other channel",
			opts:     func(o *Options) { o.MaxChannelConsumers = 1 },
			setup:    []v2Step{stepOtherSub("limited", "c")},
			send:     rawLine("SUB", "limited", "c2"),
			wantResp: "OK",
		},
	})
}

func TestV2Pub(t *testing.T) {
	runV2Cases(t, []v2Case{
		{name: "ok", send: rawCmd("PUB", []byte("hello"), "pub_t"), wantResp: "OK"},
		{name: "ok after SUB", setup: []v2Step{stepSub("pub_sub_t", "c")}, send: rawCmd("PUB", []byte("hello"), "pub_t"), wantResp: "OK"},
		{name: "no topic", send: rawLine("PUB"), wantErr: "E_INVALID PUB insufficient number of parameters", closed: true},
		{name: "bad topic", send: rawLine("PUB", "a*b"), wantErr: `E_BAD_TOPIC PUB topic name "a*b" is not valid`, closed: true},
		{name: "body size 0", send: rawWithBody("PUB", 0, nil, "pub_t"), wantErr: "E_BAD_MESSAGE PUB invalid message body size 0", closed: true},
		{name: "body size negative", send: rawWithBody("PUB", -1, nil, "pub_t"), wantErr: "E_BAD_MESSAGE PUB invalid message body size -1", closed: true},
		{name: "body too big", send: rawWithBody("PUB", 1048577, nil, "pub_t"), wantErr: "E_BAD_MESSAGE PUB message too big 1048577 > 1048576", closed: true},
		{name: "size 0x7fffffff", send: rawWithBody("PUB", 0x7fffffff, nil, "pub_t"), wantErr: "E_BAD_MESSAGE PUB message too big 2147483647 > 1048576", closed: true},
		{name: "size 0xffffffff", send: rawWithBody("PUB", 0xffffffff, nil, "pub_t"), wantErr: "E_BAD_MESSAGE PUB invalid message body size -1", closed: true},
		{name: "size 0x80000000", send: rawWithBody("PUB", 0x80000000, nil, "pub_t"), wantErr: "E_BAD_MESSAGE PUB invalid message body size -2147483648", closed: true},
		{
			name:     "at max msg size",
			opts:     func(o *Options) { o.MaxMsgSize = 10 },
			send:     rawCmd("PUB", bytes.Repeat([]byte("x"), 10), "pub_t"),
			wantResp: "OK",
		},
		{
			name:    "above max msg size",
			opts:    func(o *Options) { o.MaxMsgSize = 10 },
			send:    rawWithBody("PUB", 11, nil, "pub_t"),
			wantErr: "E_BAD_MESSAGE PUB message too big 11 > 10",
			closed:  true,
		},
	})
}

func TestV2DPub(t *testing.T) {
	runV2Cases(t, []v2Case{
		{name: "ok", send: rawCmd("DPUB", []byte("later"), "dpub_t", "1000"), wantResp: "OK"},
		{name: "ok zero delay", send: rawCmd("DPUB", []byte("now"), "dpub_t", "0"), wantResp: "OK"},
		{name: "ok max delay", send: rawCmd("DPUB", []byte("much later"), "dpub_t", "3600000"), wantResp: "OK"},
		{name: "no params", send: rawLine("DPUB"), wantErr: "E_INVALID DPUB insufficient number of parameters", closed: true},
		{name: "no timeout", send: rawLine("DPUB", "dpub_t"), wantErr: "E_INVALID DPUB insufficient number of parameters", closed: true},
		{name: "bad topic", send: rawLine("DPUB", "a*b", "0"), wantErr: `E_BAD_TOPIC DPUB topic name "a*b" is not valid`, closed: true},
		{name: "timeout not a number", send: rawLine("DPUB", "dpub_t", "abc"), wantErr: "E_INVALID DPUB could not parse timeout abc", closed: true},
		{name: "timeout negative", send: rawLine("DPUB", "dpub_t", "-1"), wantErr: "E_INVALID DPUB could not parse timeout -1", closed: true},
		{name: "timeout above max", send: rawLine("DPUB", "dpub_t", "3600001"), wantErr: "E_INVALID DPUB timeout 3600001 out of range 0-3600000", closed: true},
		{
			name:    "timeout above configured max",
			opts:    func(o *Options) { o.MaxReqTimeout = 10 * time.Second },
			send:    rawLine("DPUB", "dpub_t", "10001"),
			wantErr: "E_INVALID DPUB timeout 10001 out of range 0-10000",
			closed:  true,
		},
		{name: "body size 0", send: rawWithBody("DPUB", 0, nil, "dpub_t", "10"), wantErr: "E_BAD_MESSAGE DPUB invalid message body size 0", closed: true},
		{name: "body size negative", send: rawWithBody("DPUB", -1, nil, "dpub_t", "10"), wantErr: "E_BAD_MESSAGE DPUB invalid message body size -1", closed: true},
		{name: "body too big", send: rawWithBody("DPUB", 1048577, nil, "dpub_t", "10"), wantErr: "E_BAD_MESSAGE DPUB message too big 1048577 > 1048576", closed: true},
		{name: "size 0x7fffffff", send: rawWithBody("DPUB", 0x7fffffff, nil, "dpub_t", "10"), wantErr: "E_BAD_MESSAGE DPUB message too big 2147483647 > 1048576", closed: true},
	})
}

// rawMPUBBody builds an MPUB body from a message count and raw entries, so
// counts and sizes can disagree with the data.
func rawMPUBBody(count int64, entries ...[]byte) []byte {
	return rawConcat(append([][]byte{rawSize(count)}, entries...)...)
}

// rawMPUBEntry is one message of an MPUB body: a size prefix and the bytes.
func rawMPUBEntry(size int64, body []byte) []byte { return rawConcat(rawSize(size), body) }

func rawMPUBOKEntry(body string) []byte { return rawMPUBEntry(int64(len(body)), []byte(body)) }

func TestV2MPub(t *testing.T) {
	smallMsgs := func(o *Options) { o.MaxMsgSize = 100 }
	runV2Cases(t, []v2Case{
		{name: "ok", send: rawCmd("MPUB", rawMPUBBody(2, rawMPUBOKEntry("one"), rawMPUBOKEntry("two")), "mpub_t"), wantResp: "OK"},
		{name: "no topic", send: rawLine("MPUB"), wantErr: "E_INVALID MPUB insufficient number of parameters", closed: true},
		{
			name: "bad topic",
			send: rawLine("MPUB", "a*b"),
			// nsqd repeats the code in this one description, a typo no
			// client matches; wren sends it once.
			wantErr: `E_BAD_TOPIC MPUB topic name "a*b" is not valid`,
			closed:  true,
		},
		{name: "body size 0", send: rawWithBody("MPUB", 0, nil, "mpub_t"), wantErr: "E_BAD_BODY MPUB invalid body size 0", closed: true},
		{name: "body size negative", send: rawWithBody("MPUB", -1, nil, "mpub_t"), wantErr: "E_BAD_BODY MPUB invalid body size -1", closed: true},
		{name: "body too big", send: rawWithBody("MPUB", 5242881, nil, "mpub_t"), wantErr: "E_BAD_BODY MPUB body too big 5242881 > 5242880", closed: true},
		{name: "size 0x7fffffff", send: rawWithBody("MPUB", 0x7fffffff, nil, "mpub_t"), wantErr: "E_BAD_BODY MPUB body too big 2147483647 > 5242880", closed: true},
		{name: "size 0xffffffff", send: rawWithBody("MPUB", 0xffffffff, nil, "mpub_t"), wantErr: "E_BAD_BODY MPUB invalid body size -1", closed: true},
		{name: "count 0", send: rawCmd("MPUB", rawMPUBBody(0), "mpub_t"), wantErr: "E_BAD_BODY MPUB invalid message count 0", closed: true},
		{name: "count negative", send: rawCmd("MPUB", rawMPUBBody(-1), "mpub_t"), wantErr: "E_BAD_BODY MPUB invalid message count -1", closed: true},
		{
			name:    "count above what the max body holds",
			send:    rawCmd("MPUB", rawMPUBBody(protocol.MaxMPUBCount(5242880)+1), "mpub_t"),
			wantErr: "E_BAD_BODY MPUB invalid message count 1048576",
			closed:  true,
		},
		{
			name:    "message size 0",
			send:    rawCmd("MPUB", rawMPUBBody(2, rawMPUBEntry(0, nil), rawMPUBOKEntry("two")), "mpub_t"),
			wantErr: "E_BAD_MESSAGE MPUB invalid message(0) body size 0",
			closed:  true,
		},
		{
			name:    "message size negative",
			send:    rawCmd("MPUB", rawMPUBBody(2, rawMPUBOKEntry("one"), rawMPUBEntry(-1, nil)), "mpub_t"),
			wantErr: "E_BAD_MESSAGE MPUB invalid message(1) body size -1",
			closed:  true,
		},
		{
			name:    "message too big",
			opts:    smallMsgs,
			send:    rawCmd("MPUB", rawMPUBBody(1, rawMPUBOKEntry(strings.Repeat("x", 101))), "mpub_t"),
			wantErr: "E_BAD_MESSAGE MPUB message too big 101 > 100",
			closed:  true,
		},
		{
			name:     "message at max size",
			opts:     smallMsgs,
			send:     rawCmd("MPUB", rawMPUBBody(1, rawMPUBOKEntry(strings.Repeat("x", 100))), "mpub_t"),
			wantResp: "OK",
		},
		{
			// Read past the short declared size, message by message, the
			// message bytes are still bounded by --max-body-size.
			name: "declared size short, messages past max body size",
			opts: func(o *Options) { o.MaxBodySize, o.MaxMsgSize = 100, 100 },
			send: rawWithBody("MPUB", 100, rawMPUBBody(2,
				rawMPUBOKEntry(strings.Repeat("x", 60)), rawMPUBOKEntry(strings.Repeat("y", 60))), "mpub_t"),
			wantErr: "E_BAD_BODY MPUB body too big 120 > 100",
			closed:  true,
		},
		{
			// nsqd reads the messages from the stream, so bytes past the
			// last message inside the declared size run as the next
			// command; wren holds MPUB to its declared size.
			name:    "bytes after the last message",
			send:    rawCmd("MPUB", rawConcat(rawMPUBBody(1, rawMPUBOKEntry("one")), rawLine("NOP")), "mpub_t"),
			wantErr: "E_BAD_BODY MPUB body has 4 bytes after its last message",
			closed:  true,
		},
	})
}

// nsq.js and segmentio's nsq-go declare an MPUB body size that counts
// only the message bytes; nsqd reads each message by its own size, and so
// does wren: the publish succeeds, and the command after it on the same
// connection is read from the right place.
func TestV2MPubDeclaredSizeOfMessagesOnly(t *testing.T) {
	b := startTestBroker(t, nil)
	ch := subscribedChannel(t, b, "nsqjs", "c")
	c := dialRaw(t, b)
	// As nsq.js frames ['foo','bar','baz']: 9 declared, 25 sent.
	mpub := rawWithBody("MPUB", 9, rawMPUBBody(3, rawMPUBOKEntry("foo"), rawMPUBOKEntry("bar"), rawMPUBOKEntry("baz")), "nsqjs")
	c.sendRaw(t, rawConcat(mpub, rawCmd("PUB", []byte("qux"), "nsqjs")))
	c.expectResponse(t, "OK")
	c.expectResponse(t, "OK")
	if got := ch.Depth(); got != 4 {
		t.Fatalf("channel depth %d after the MPUB and the PUB, want 4", got)
	}
	sub := dialRaw(t, b)
	sub.send(t, "SUB", nil, "nsqjs", "c")
	sub.expectResponse(t, "OK")
	sub.send(t, "RDY", nil, "4")
	var got []string
	for range 4 {
		got = append(got, string(sub.expectMessage(t).Body))
	}
	if strings.Join(got, ",") != "foo,bar,baz,qux" {
		t.Fatalf("delivered %v, want foo, bar, baz, qux", got)
	}
}

// TestV2MPubIsAtomic checks that an MPUB with one bad message queues none.
func TestV2MPubIsAtomic(t *testing.T) {
	b := startTestBroker(t, func(o *Options) { o.MaxMsgSize = 100 })
	cases := []struct {
		name    string
		third   []byte
		wantErr string
	}{
		{name: "third too big", third: rawMPUBOKEntry(strings.Repeat("x", 101)), wantErr: "E_BAD_MESSAGE MPUB message too big 101 > 100"},
		{name: "third empty", third: rawMPUBEntry(0, nil), wantErr: "E_BAD_MESSAGE MPUB invalid message(2) body size 0"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			existing := fmt.Sprintf("atomic_%d", i)
			fresh := fmt.Sprintf("atomic_fresh_%d", i)
			c := dialRaw(t, b)
			c.send(t, "PUB", []byte("before"), existing)
			c.expectResponse(t, "OK")
			for _, topic := range []string{existing, fresh} {
				c := dialRaw(t, b)
				c.send(t, "MPUB", rawMPUBBody(3, rawMPUBOKEntry("one"), rawMPUBOKEntry("two"), tc.third), topic)
				c.expectError(t, tc.wantErr)
				c.expectClosed(t)
			}
			if got := b.ExistingTopic(existing).Depth(); got != 1 {
				t.Errorf("topic %s depth %d after the failed MPUB, want 1", existing, got)
			}
			// nsqd creates the topic before reading the body; wren does not.
			if topic := b.ExistingTopic(fresh); topic != nil && topic.Depth() != 0 {
				t.Errorf("topic %s depth %d after the failed MPUB, want 0", fresh, topic.Depth())
			}
		})
	}
}

func TestV2Rdy(t *testing.T) {
	sub := stepSub("rdy_t", "c")
	runV2Cases(t, []v2Case{
		{name: "ok", setup: []v2Step{sub}, send: rawLine("RDY", "2500")},
		{name: "zero", setup: []v2Step{sub}, send: rawLine("RDY", "0")},
		{name: "no count means 1", setup: []v2Step{sub}, send: rawLine("RDY")},
		{name: "before SUB", send: rawLine("RDY", "1"), wantErr: "E_INVALID cannot RDY in current state", closed: true},
		{name: "negative", setup: []v2Step{sub}, send: rawLine("RDY", "-1"), wantErr: "E_INVALID RDY could not parse count -1", closed: true},
		{name: "not a number", setup: []v2Step{sub}, send: rawLine("RDY", "abc"), wantErr: "E_INVALID RDY could not parse count abc", closed: true},
		{name: "above max", setup: []v2Step{sub}, send: rawLine("RDY", "2501"), wantErr: "E_INVALID RDY count 2501 out of range 0-2500", closed: true},
		{
			name:    "above configured max",
			opts:    func(o *Options) { o.MaxRdyCount = 10 },
			setup:   []v2Step{sub},
			send:    rawLine("RDY", "11"),
			wantErr: "E_INVALID RDY count 11 out of range 0-10",
			closed:  true,
		},
		{name: "after CLS ignored", setup: []v2Step{sub, stepCLS}, send: rawLine("RDY", "5")},
		{name: "bad count after CLS ignored", setup: []v2Step{sub, stepCLS}, send: rawLine("RDY", "abc")},
		{name: "count above max after CLS ignored", setup: []v2Step{sub, stepCLS}, send: rawLine("RDY", "2501")},
		{
			// nsqd's parser wraps (2^64+1 is RDY 1); wren refuses.
			name:    "count wraps past 2^64",
			setup:   []v2Step{sub},
			send:    rawLine("RDY", "18446744073709551617"),
			wantErr: "E_INVALID RDY could not parse count 18446744073709551617",
			closed:  true,
		},
	})
}

// TestV2InFlightCommands covers FIN, REQ and TOUCH, which share their
// validation; only their "failed" errors leave the connection open.
func TestV2InFlightCommands(t *testing.T) {
	sub := stepSub("inflight_t", "c")
	var cases []v2Case
	for _, tc := range []struct {
		cmd     string
		failed  string // the error code for an ID not in flight
		timeout []string
	}{
		{cmd: "FIN", failed: "E_FIN_FAILED"},
		{cmd: "REQ", failed: "E_REQ_FAILED", timeout: []string{"0"}},
		{cmd: "TOUCH", failed: "E_TOUCH_FAILED"},
	} {
		params := func(id string) []string { return append([]string{id}, tc.timeout...) }
		notInFlight := fmt.Sprintf("%s %s %s failed ID not in flight", tc.failed, tc.cmd, rawUnknownID)
		cases = append(cases,
			v2Case{name: tc.cmd + " before SUB", send: rawLine(tc.cmd, params(rawUnknownID)...), wantErr: "E_INVALID cannot " + tc.cmd + " in current state", closed: true},
			v2Case{name: tc.cmd + " no params", setup: []v2Step{sub}, send: rawLine(tc.cmd), wantErr: "E_INVALID " + tc.cmd + " insufficient number of params", closed: true},
			v2Case{name: tc.cmd + " short ID", setup: []v2Step{sub}, send: rawLine(tc.cmd, params("123")...), wantErr: "E_INVALID invalid message ID", closed: true},
			v2Case{name: tc.cmd + " long ID", setup: []v2Step{sub}, send: rawLine(tc.cmd, params(rawUnknownID+"0")...), wantErr: "E_INVALID invalid message ID", closed: true},
			v2Case{name: tc.cmd + " ID not in flight", setup: []v2Step{sub}, send: rawLine(tc.cmd, params(rawUnknownID)...), wantErr: notInFlight},
			v2Case{name: tc.cmd + " ID not in flight after CLS", setup: []v2Step{sub, stepCLS}, send: rawLine(tc.cmd, params(rawUnknownID)...), wantErr: notInFlight},
		)
	}
	cases = append(cases,
		v2Case{name: "REQ no timeout", setup: []v2Step{sub}, send: rawLine("REQ", rawUnknownID), wantErr: "E_INVALID REQ insufficient number of params", closed: true},
		v2Case{name: "REQ timeout not a number", setup: []v2Step{sub}, send: rawLine("REQ", rawUnknownID, "abc"), wantErr: "E_INVALID REQ could not parse timeout abc", closed: true},
		v2Case{name: "REQ timeout negative", setup: []v2Step{sub}, send: rawLine("REQ", rawUnknownID, "-1"), wantErr: "E_INVALID REQ could not parse timeout -1", closed: true},
		v2Case{name: "REQ timeout above max is clamped", setup: []v2Step{sub}, send: rawLine("REQ", rawUnknownID, "86400000"), wantErr: "E_REQ_FAILED REQ " + rawUnknownID + " failed ID not in flight"},
	)
	runV2Cases(t, cases)
}

// rawConsumeOne subscribes c to topic/channel, publishes one message on it and
// returns the message as delivered with RDY 1.
func rawConsumeOne(t *testing.T, c *rawClient, topic, channel string) protocol.Message {
	t.Helper()
	c.send(t, "SUB", nil, topic, channel)
	c.expectResponse(t, "OK")
	c.send(t, "PUB", []byte("payload"), topic)
	c.expectResponse(t, "OK")
	c.send(t, "RDY", nil, "1")
	return c.expectMessage(t)
}

func TestV2ReqClampsTimeoutToMax(t *testing.T) {
	b := startTestBroker(t, func(o *Options) { o.MaxReqTimeout = time.Minute })
	c := dialRaw(t, b)
	m := rawConsumeOne(t, c, "req_clamp", "c")
	c.send(t, "REQ", nil, string(m.ID[:]), "999999999")
	c.expectAlive(t) // no error frame before PUB's OK
	ch := b.ExistingTopic("req_clamp").ExistingChannel("c")
	waitFor(t, 5*time.Second, "the message deferred", func() bool { return ch.deferredCount() == 1 })
	if n := ch.inFlightCount.Load(); n != 0 {
		t.Errorf("in flight %d after REQ, want 0", n)
	}
}

func TestV2FinOtherClientsMessage(t *testing.T) {
	b := startTestBroker(t, nil)
	owner := dialRaw(t, b)
	m := rawConsumeOne(t, owner, "owned", "c")
	other := dialRaw(t, b)
	stepSub("owned", "c")(t, b, other)
	for _, command := range []struct{ name, code string }{{"FIN", "E_FIN_FAILED"}, {"TOUCH", "E_TOUCH_FAILED"}, {"REQ", "E_REQ_FAILED"}} {
		params := []string{string(m.ID[:])}
		if command.name == "REQ" {
			params = append(params, "0")
		}
		other.send(t, command.name, nil, params...)
		other.expectError(t, fmt.Sprintf("%s %s %s failed client does not own message", command.code, command.name, m.ID[:]))
	}
	other.expectAlive(t)
}

func TestV2Cls(t *testing.T) {
	sub := stepSub("cls_t", "c")
	runV2Cases(t, []v2Case{
		{name: "before SUB", send: rawLine("CLS"), wantErr: "E_INVALID cannot CLS in current state", closed: true},
		{name: "after SUB", setup: []v2Step{sub}, send: rawLine("CLS"), wantResp: "CLOSE_WAIT"},
		{name: "twice", setup: []v2Step{sub, stepCLS}, send: rawLine("CLS"), wantErr: "E_INVALID cannot CLS in current state", closed: true},
	})
}

func TestV2Auth(t *testing.T) {
	runV2Cases(t, []v2Case{
		{name: "disabled", send: rawCmd("AUTH", []byte("secret")), wantErr: "E_AUTH_DISABLED AUTH disabled", closed: true},
		{name: "after SUB", setup: []v2Step{stepSub("auth_t", "c")}, send: rawLine("AUTH"), wantErr: "E_INVALID cannot AUTH in current state", closed: true},
		{name: "with params", send: rawLine("AUTH", "secret"), wantErr: "E_INVALID AUTH invalid number of parameters", closed: true},
		{name: "body size 0", send: rawWithBody("AUTH", 0, nil), wantErr: "E_BAD_BODY AUTH invalid body size 0", closed: true},
		{name: "body too big", send: rawWithBody("AUTH", 5242881, nil), wantErr: "E_BAD_BODY AUTH body too big 5242881 > 5242880", closed: true},
		{name: "size 0xffffffff", send: rawWithBody("AUTH", 0xffffffff, nil), wantErr: "E_BAD_BODY AUTH invalid body size -1", closed: true},
	})
}

// writeSelfSignedCert writes a certificate for 127.0.0.1 and its key.
func writeSelfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile, _ = writeTestCertificates(t, t.TempDir())
	return certFile, keyFile
}

func v2RequireTLS(t *testing.T) func(*Options) {
	certFile, keyFile := writeSelfSignedCert(t)
	return func(o *Options) {
		o.TLSCert, o.TLSKey = certFile, keyFile
		o.TLSRequired = TLSRequiredEverywhere
	}
}

func TestV2TLSRequired(t *testing.T) {
	withTLS := v2RequireTLS(t)
	runV2Cases(t, []v2Case{
		{name: "PUB before TLS", opts: withTLS, send: rawLine("PUB", "tls_t"), wantErr: "E_INVALID cannot PUB in current state (TLS required)", closed: true},
		{name: "NOP before TLS", opts: withTLS, send: rawLine("NOP"), wantErr: "E_INVALID cannot NOP in current state (TLS required)", closed: true},
		{name: "SUB before TLS", opts: withTLS, send: rawLine("SUB", "tls_t", "c"), wantErr: "E_INVALID cannot SUB in current state (TLS required)", closed: true},
		{name: "unknown command before TLS", opts: withTLS, send: rawLine("FOO"), wantErr: "E_INVALID cannot FOO in current state (TLS required)", closed: true},
		{
			name:    "PUB after IDENTIFY without TLS",
			opts:    withTLS,
			setup:   []v2Step{stepIdentify(`{"client_id":"plain"}`)},
			send:    rawLine("PUB", "tls_t"),
			wantErr: "E_INVALID cannot PUB in current state (TLS required)",
			closed:  true,
		},
	})

	t.Run("PUB after TLS upgrade", func(t *testing.T) {
		b := startTestBroker(t, withTLS)
		c := dialRaw(t, b)
		c.send(t, "IDENTIFY", []byte(`{"feature_negotiation":true,"tls_v1":true}`))
		frameType, data := c.mustReadFrame(t)
		if frameType != protocol.FrameTypeResponse || !bytes.Contains(data, []byte(`"tls_v1":true`)) {
			t.Fatalf("IDENTIFY: got frame type %d %s, want tls_v1 granted", frameType, data)
		}
		c.startTLS(t)
		c.expectAlive(t)
	})
}

// TestV2LongLineClosesConnection sends a command line longer than the
// server's read buffer: the connection ends and the broker keeps serving.
func TestV2LongLineClosesConnection(t *testing.T) {
	b := startTestBroker(t, nil)
	c := dialRaw(t, b)
	c.sendRaw(t, bytes.Repeat([]byte("x"), 20000))
	for {
		frameType, data, err := c.readFrame()
		if err != nil {
			if !isClosedErr(err) {
				t.Fatalf("got %v, want the connection closed", err)
			}
			break
		}
		if frameType != protocol.FrameTypeError {
			t.Fatalf("got frame type %d %q before the close", frameType, data)
		}
	}
	expectBrokerServes(t, b)
}

// Pipelined commands that arrive in one read are answered with one write:
// the responses to 50 PUBs sent together come back together.
func TestPipelinedResponsesFlushedOnce(t *testing.T) {
	b := startTestBroker(t, nil)
	c := dialRaw(t, b)
	const n = 50
	var batch []byte
	for i := 0; i < n; i++ {
		batch = append(batch, protocol.AppendCommand(nil, "PUB", []byte("pipelined"), "pipeline")...)
	}
	c.sendRaw(t, batch)
	frame := protocol.AppendFrame(nil, protocol.FrameTypeResponse, protocol.ResponseOK)
	want := bytes.Repeat(frame, n)
	got := make([]byte, len(want)+1)
	_ = c.conn.SetReadDeadline(time.Now().Add(rawReadTimeout))
	read, err := c.conn.Read(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:read], want) {
		t.Fatalf("first read returned %d bytes (%d responses), want all %d responses in one", read, read/len(frame), n)
	}
}
