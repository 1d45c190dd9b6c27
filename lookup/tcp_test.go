package lookup

import (
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"wren/protocol"
)

// identifyReplyFor is the exact reply l gives to IDENTIFY.
func identifyReplyFor(t *testing.T, l *Lookup) string {
	t.Helper()
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"broadcast_address": testBroadcastAddress,
		"hostname":          hostname,
		"http_port":         port(l.HTTPAddr()),
		"tcp_port":          port(l.TCPAddr()),
		"version":           "1.3.0",
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// v1Case is one connection: the bytes sent after the magic (or instead of
// it), the replies expected in order, and whether the lookup then closes
// the connection. Replies are nsqlookupd v1.3.0's, byte for byte, except
// in the cases that say how nsqlookupd differs.
type v1Case struct {
	name    string
	noMagic bool
	send    string
	// halfClose closes our side after sending, so that a command waiting
	// for more input sees EOF.
	halfClose bool
	want      []string
	closed    bool
	differs   string
}

// identified stands for the lookup's IDENTIFY reply in v1Case.want.
const identified = "<identify reply>"

func v1Cases() []v1Case {
	ident := string(identifyCommand(testPeer("broker", 4150)))
	missing := func(field string) string {
		var m map[string]any
		_ = json.Unmarshal(identifyBody(testPeer("broker", 4150)), &m)
		delete(m, field)
		body, _ := json.Marshal(m)
		return string(protocol.AppendCommand(nil, "IDENTIFY", body))
	}
	return []v1Case{
		{name: "bad magic", noMagic: true, send: "  V2PING\n", want: []string{"E_BAD_PROTOCOL"}, closed: true},
		{name: "PING", send: "PING\n", want: []string{"OK"}},
		{name: "PING with params", send: "PING a b\n", want: []string{"OK"}},
		{name: "PING padded", send: " PING \t\r\n", want: []string{"OK"}},
		{name: "PING CRLF", send: "PING\r\nPING\n", want: []string{"OK", "OK"}},
		{name: "unknown command", send: "FOO bar\nPING\n", want: []string{"E_INVALID invalid command FOO"}, closed: true},
		{name: "lower case", send: "ping\n", want: []string{"E_INVALID invalid command ping"}, closed: true},
		{name: "empty line", send: "\n", want: []string{"E_INVALID invalid command "}, closed: true},
		{name: "IDENTIFY", send: ident, want: []string{identified}},
		{name: "IDENTIFY twice", send: ident + ident, want: []string{identified, "E_INVALID cannot IDENTIFY again"}, closed: true},
		{name: "IDENTIFY with params", send: string(protocol.AppendCommand(nil, "IDENTIFY", identifyBody(testPeer("b", 1)), "x")), want: []string{identified}},
		{name: "IDENTIFY without broadcast_address", send: missing("broadcast_address"), want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "IDENTIFY without tcp_port", send: missing("tcp_port"), want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "IDENTIFY without http_port", send: missing("http_port"), want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "IDENTIFY without version", send: missing("version"), want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "IDENTIFY without hostname", send: missing("hostname"), want: []string{identified}},
		{name: "IDENTIFY null", send: "IDENTIFY\n\x00\x00\x00\x04null", want: []string{"E_BAD_BODY IDENTIFY missing fields"}, closed: true},
		{name: "IDENTIFY bad JSON", send: "IDENTIFY\n\x00\x00\x00\x05{nope", want: []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}, closed: true},
		{name: "IDENTIFY wrong type", send: string(protocol.AppendCommand(nil, "IDENTIFY", []byte(`{"broadcast_address":"h","tcp_port":"1","http_port":2,"version":"v"}`))), want: []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}, closed: true},
		{name: "IDENTIFY body size 0", send: string(withSize("IDENTIFY", 0, nil)), want: []string{"E_BAD_BODY IDENTIFY failed to decode JSON body"}, closed: true},
		{name: "IDENTIFY body size negative", send: string(withSize("IDENTIFY", 0xfffffffe, nil)), want: []string{"E_BAD_BODY IDENTIFY invalid body size -2"}, closed: true, differs: "nsqlookupd panics and exits"},
		{name: "IDENTIFY body size 0xffffffff", send: string(withSize("IDENTIFY", 0xffffffff, nil)), want: []string{"E_BAD_BODY IDENTIFY invalid body size -1"}, closed: true, differs: "nsqlookupd panics and exits"},
		{name: "IDENTIFY body too big", send: string(withSize("IDENTIFY", maxIdentifyBodySize+1, nil)), want: []string{"E_BAD_BODY IDENTIFY body too big 1048577 > 1048576"}, closed: true, differs: "nsqlookupd allocates the size and waits for the body"},
		{name: "IDENTIFY body size cut short", send: "IDENTIFY\n\x00\x00", halfClose: true, want: []string{"E_BAD_BODY IDENTIFY failed to read body size"}, closed: true},
		{name: "IDENTIFY body cut short", send: "IDENTIFY\n\x00\x00\x00\x10{}", halfClose: true, want: []string{"E_BAD_BODY IDENTIFY failed to read body"}, closed: true},
		{name: "REGISTER before IDENTIFY", send: "REGISTER t\n", want: []string{"E_INVALID client must IDENTIFY"}, closed: true},
		{name: "UNREGISTER before IDENTIFY", send: "UNREGISTER t\n", want: []string{"E_INVALID client must IDENTIFY"}, closed: true},
		{name: "REGISTER without topic", send: ident + "REGISTER\n", want: []string{identified, "E_INVALID REGISTER insufficient number of params"}, closed: true},
		{name: "REGISTER trailing space", send: ident + "REGISTER \n", want: []string{identified, "E_INVALID REGISTER insufficient number of params"}, closed: true},
		{name: "REGISTER bad topic", send: ident + "REGISTER a*\n", want: []string{identified, "E_BAD_TOPIC REGISTER topic name 'a*' is not valid"}, closed: true},
		{name: "REGISTER empty topic", send: ident + "REGISTER  a\n", want: []string{identified, "E_BAD_TOPIC REGISTER topic name '' is not valid"}, closed: true},
		{name: "REGISTER long topic", send: ident + "REGISTER " + strings.Repeat("t", 65) + "\n", want: []string{identified, "E_BAD_TOPIC REGISTER topic name '" + strings.Repeat("t", 65) + "' is not valid"}, closed: true},
		{name: "REGISTER bad channel", send: ident + "REGISTER a b*\n", want: []string{identified, "E_BAD_CHANNEL REGISTER channel name 'b*' is not valid"}, closed: true},
		{name: "REGISTER", send: ident + "REGISTER a b\nREGISTER a\nREGISTER a b extra\nREGISTER a#ephemeral b#ephemeral\n", want: []string{identified, "OK", "OK", "OK", "OK"}},
		{name: "UNREGISTER without topic", send: ident + "UNREGISTER\n", want: []string{identified, "E_INVALID UNREGISTER insufficient number of params"}, closed: true},
		{name: "UNREGISTER bad topic", send: ident + "UNREGISTER a*\n", want: []string{identified, "E_BAD_TOPIC UNREGISTER topic name 'a*' is not valid"}, closed: true},
		{name: "UNREGISTER bad channel", send: ident + "UNREGISTER a b*\n", want: []string{identified, "E_BAD_CHANNEL UNREGISTER channel name 'b*' is not valid"}, closed: true},
		{name: "UNREGISTER unknown", send: ident + "UNREGISTER a b\nUNREGISTER a\nUNREGISTER zz\n", want: []string{identified, "OK", "OK", "OK"}},
		{name: "line too long", send: "PING " + strings.Repeat("x", readBufferSize) + "\n", want: []string{"E_INVALID command line too long"}, closed: true, differs: "nsqlookupd reads lines of any length"},
	}
}

func TestV1Replies(t *testing.T) {
	l := startTestLookup(t, nil)
	tests := v1Cases()
	wantIdentify := identifyReplyFor(t, l)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, l.TCPAddr())
			if !tt.noMagic {
				c.send([]byte(protocol.MagicV1))
			}
			c.send([]byte(tt.send))
			if tt.halfClose {
				if err := c.conn.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			for i, want := range tt.want {
				if want == identified {
					want = wantIdentify
				}
				got, err := c.readReply()
				if err != nil {
					t.Fatalf("reply %d: %v (want %q)", i, err, want)
				}
				if got != want {
					t.Fatalf("reply %d: got %q, want %q", i, got, want)
				}
			}
			if tt.closed {
				c.expectClosed()
				return
			}
			c.mustCommand("PING")
		})
	}
	// A fatal error closes only its own connection; the lookup still
	// serves new ones (nsqlookupd crashes on a negative size).
	c := dialV1(t, l.TCPAddr())
	c.mustCommand("PING")
	c.identify(testPeer("after", 4150))
	c.mustCommand("REGISTER after")
	if got := topicsOf(t, l); !slices.Contains(got, "after") {
		t.Fatalf("/topics = %v, want it to hold after", got)
	}
}

// The reply frame is exactly [int32 size][data] with no frame type.
func TestV1Framing(t *testing.T) {
	l := startTestLookup(t, nil)
	c := dialV1(t, l.TCPAddr())
	c.send([]byte("PING\n"))
	buf := make([]byte, 6)
	_ = c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := io.ReadFull(c.r, buf); err != nil {
		t.Fatal(err)
	}
	if string(buf) != "\x00\x00\x00\x02OK" {
		t.Fatalf("PING reply bytes %q", buf)
	}
}

func TestIdentifyReplyAndRemoteAddress(t *testing.T) {
	l := startTestLookup(t, nil)
	c := dialV1(t, l.TCPAddr())
	p := testPeer("broker", 4150)
	p.RemoteAddress = "1.2.3.4:5" // ignored: the lookup records the real one
	c.send(protocol.AppendCommand(nil, "IDENTIFY", func() []byte { b, _ := json.Marshal(p); return b }()))
	if got, want := c.mustRead(), identifyReplyFor(t, l); got != want {
		t.Fatalf("IDENTIFY reply %s, want %s", got, want)
	}
	c.mustCommand("REGISTER orders")
	r, ok := lookupTopic(t, l, "orders")
	if !ok || len(r.Producers) != 1 {
		t.Fatalf("/lookup = %+v, %v", r, ok)
	}
	if got, want := r.Producers[0].RemoteAddress, c.conn.LocalAddr().String(); got != want {
		t.Fatalf("remote_address %q, want %q", got, want)
	}
}

func TestRegisterAndUnregister(t *testing.T) {
	l := startTestLookup(t, nil)
	c := dialV1(t, l.TCPAddr())
	c.identify(testPeer("a", 4150))
	c.mustCommand("REGISTER orders billing")
	c.mustCommand("REGISTER orders shipping")
	c.mustCommand("REGISTER events")

	if got := topicsOf(t, l); !slices.Equal(got, []string{"events", "orders"}) {
		t.Fatalf("/topics = %v", got)
	}
	if got := channelsOf(t, l, "orders"); !slices.Equal(got, []string{"billing", "shipping"}) {
		t.Fatalf("/channels = %v", got)
	}
	r, _ := lookupTopic(t, l, "events")
	if !slices.Equal(producerNames(r.Producers), []string{"a"}) || len(r.Channels) != 0 {
		t.Fatalf("/lookup?topic=events = %+v", r)
	}

	// UNREGISTER of a channel leaves the (now empty) registration, and the
	// topic registration with its producer.
	c.mustCommand("UNREGISTER orders shipping")
	if got := channelsOf(t, l, "orders"); !slices.Equal(got, []string{"billing", "shipping"}) {
		t.Fatalf("/channels after UNREGISTER of a channel = %v", got)
	}
	r, _ = lookupTopic(t, l, "orders")
	if !slices.Equal(producerNames(r.Producers), []string{"a"}) {
		t.Fatalf("/lookup after UNREGISTER of a channel = %+v", r)
	}

	// UNREGISTER of a topic removes the peer from it and all its channels;
	// the registrations stay, with no producers.
	c.mustCommand("UNREGISTER orders")
	r, ok := lookupTopic(t, l, "orders")
	if !ok || len(r.Producers) != 0 || !slices.Equal(r.Channels, []string{"billing", "shipping"}) {
		t.Fatalf("/lookup after UNREGISTER of the topic = %+v, %v", r, ok)
	}
	nodes := nodesOf(t, l)
	if len(nodes) != 1 || !slices.Equal(nodes[0].Topics, []string{"events"}) {
		t.Fatalf("/nodes = %+v", nodes)
	}
}

func TestEphemeralRegistrations(t *testing.T) {
	l := startTestLookup(t, nil)
	a := dialV1(t, l.TCPAddr())
	a.identify(testPeer("a", 4150))
	b := dialV1(t, l.TCPAddr())
	b.identify(testPeer("b", 4250))

	a.mustCommand("REGISTER live#ephemeral c#ephemeral")
	b.mustCommand("REGISTER live#ephemeral c#ephemeral")
	a.mustCommand("REGISTER live#ephemeral durable")

	// Another producer remains: the channel stays.
	a.mustCommand("UNREGISTER live#ephemeral c#ephemeral")
	if got := channelsOf(t, l, "live#ephemeral"); !slices.Equal(got, []string{"c#ephemeral", "durable"}) {
		t.Fatalf("/channels = %v", got)
	}
	// The last producer leaves: the ephemeral channel goes, the durable
	// one stays.
	b.mustCommand("UNREGISTER live#ephemeral c#ephemeral")
	if got := channelsOf(t, l, "live#ephemeral"); !slices.Equal(got, []string{"durable"}) {
		t.Fatalf("/channels = %v", got)
	}
	b.mustCommand("UNREGISTER live#ephemeral")
	if got := topicsOf(t, l); !slices.Equal(got, []string{"live#ephemeral"}) {
		t.Fatalf("/topics with a producer left = %v", got)
	}
	a.mustCommand("UNREGISTER live#ephemeral")
	if got := topicsOf(t, l); len(got) != 0 {
		t.Fatalf("/topics after the last UNREGISTER = %v", got)
	}
	if _, ok := lookupTopic(t, l, "live#ephemeral"); ok {
		t.Fatal("/lookup still finds the ephemeral topic")
	}
}

// When a peer's connection closes, all its registrations go; registrations
// that other peers hold or that are durable stay.
func TestPeerDisconnect(t *testing.T) {
	l := startTestLookup(t, nil)
	a := dialV1(t, l.TCPAddr())
	a.identify(testPeer("a", 4150))
	b := dialV1(t, l.TCPAddr())
	b.identify(testPeer("b", 4250))
	a.mustCommand("REGISTER orders billing")
	a.mustCommand("REGISTER temp#ephemeral c")
	a.mustCommand("REGISTER temp2 c#ephemeral")
	b.mustCommand("REGISTER orders billing")

	a.conn.Close()
	waitFor(t, "peer a to leave /nodes", func() bool {
		nodes := nodesOf(t, l)
		return len(nodes) == 1 && nodes[0].BroadcastAddress == "b"
	})
	r, _ := lookupTopic(t, l, "orders")
	if !slices.Equal(producerNames(r.Producers), []string{"b"}) {
		t.Fatalf("/lookup?topic=orders = %+v", r)
	}
	// nsqlookupd leaves empty ephemeral registrations behind on
	// disconnect; wren removes them, as UNREGISTER does.
	if got := topicsOf(t, l); !slices.Equal(got, []string{"orders", "temp2"}) {
		t.Fatalf("/topics = %v", got)
	}
	if got := channelsOf(t, l, "temp2"); len(got) != 0 {
		t.Fatalf("/channels?topic=temp2 = %v", got)
	}

	b.conn.Close()
	waitFor(t, "peer b to leave /nodes", func() bool { return len(nodesOf(t, l)) == 0 })
	r, ok := lookupTopic(t, l, "orders")
	if !ok || len(r.Producers) != 0 || !slices.Equal(r.Channels, []string{"billing"}) {
		t.Fatalf("/lookup?topic=orders after both left = %+v, %v", r, ok)
	}
}

// A peer that PINGs stays active; one that stops is hidden from /lookup
// and /nodes but keeps its registrations.
func TestInactiveProducer(t *testing.T) {
	l := startTestLookup(t, func(o *Options) { o.InactiveProducerTimeout = 50 * time.Millisecond })
	c := dialV1(t, l.TCPAddr())
	c.identify(testPeer("a", 4150))
	c.mustCommand("REGISTER orders")
	waitFor(t, "the idle producer to be hidden", func() bool {
		r, _ := lookupTopic(t, l, "orders")
		return len(r.Producers) == 0 && len(nodesOf(t, l)) == 0
	})
	if got := topicsOf(t, l); !slices.Equal(got, []string{"orders"}) {
		t.Fatalf("/topics = %v", got)
	}
	// PING brings it back (for up to 50 ms, so poll).
	waitFor(t, "a PING to make the producer active", func() bool {
		c.mustCommand("PING")
		r, _ := lookupTopic(t, l, "orders")
		return len(r.Producers) == 1
	})
}
