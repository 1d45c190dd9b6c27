package broker

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer collects a broker's log lines for a test to search.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the logged lines that contain every one of parts.
func (b *logBuffer) lines(parts ...string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, line := range strings.Split(b.buf.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCloseReasons ends a connection in each way there is and checks that
// the close is logged once, with its reason and detail, at the level the
// reason calls for.
func TestCloseReasons(t *testing.T) {
	certFile, keyFile, caFile := writeTestCertificates(t, t.TempDir())
	cases := []struct {
		name string
		tls  bool
		// trigger makes the connection end; raw has sent the magic.
		trigger func(t *testing.T, b *Broker, raw *rawClient)
		want    closeReason
		wantErr string // in the logged err; "" when none is logged
	}{
		{
			name: "client quits",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{"client_id": "quitter"})
				_ = raw.conn.Close()
			},
			want: closeClientQuit,
		},
		{
			name: "connection reset",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{})
				_ = raw.conn.(*net.TCPConn).SetLinger(0) // close sends RST
				_ = raw.conn.Close()
			},
			want:    closeReadError,
			wantErr: "connection reset by peer",
		},
		{
			name: "heartbeat fails to write",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{"heartbeat_interval": 1000})
				// The broker's side stops sending; the next heartbeat
				// (in a second) fails before the read deadline (two).
				c := onlyClient(t, b)
				if err := c.raw.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			},
			want:    closeWriteError,
			wantErr: "broken pipe",
		},
		{
			name: "response write times out",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{})
				// As if the client had stopped reading for a heartbeat
				// interval: the reader's flush of the PUB's OK fails.
				c := onlyClient(t, b)
				if err := c.raw.SetWriteDeadline(time.Now()); err != nil {
					t.Fatal(err)
				}
				raw.send(t, "PUB", []byte("x"), "write_timeout")
			},
			want:    closeWriteTimeout,
			wantErr: "i/o timeout",
		},
		{
			name: "fatal protocol error",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.send(t, "FOO", nil)
			},
			want:    closeProtocolError,
			wantErr: "E_INVALID invalid command FOO",
		},
		{
			name: "command line too long",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.sendRaw(t, bytes.Repeat([]byte("x"), fullReadBufferSize))
			},
			want:    closeProtocolError,
			wantErr: "E_INVALID command line too long",
		},
		{
			name: "heartbeat timeout",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{"heartbeat_interval": 1000})
			},
			want:    closeHeartbeatTimeout,
			wantErr: "i/o timeout",
		},
		{
			name: "slow command line",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{"heartbeat_interval": 1000})
				raw.sendRaw(t, []byte("PUB half_a_li")) // and never the rest
			},
			want:    closeSlowCommand,
			wantErr: "i/o timeout",
		},
		{
			name: "slow body",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{"heartbeat_interval": 1000})
				raw.sendRaw(t, rawWithBody("PUB", 10, []byte("abc"), "slow_body"))
			},
			want:    closeSlowBody,
			wantErr: "PUB failed to read message body",
		},
		{
			name: "TLS handshake fails",
			tls:  true,
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{"feature_negotiation": true, "tls_v1": true})
				raw.sendRaw(t, []byte("this is not a TLS client hello\n"))
			},
			want:    closeTLSHandshake,
			wantErr: "E_IDENTIFY_FAILED IDENTIFY failed",
		},
		{
			name: "channel deleted",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.send(t, "SUB", nil, "closing", "ch")
				raw.expectResponse(t, "OK")
				if !b.ExistingTopic("closing").DeleteChannel("ch") {
					t.Fatal("channel not deleted")
				}
			},
			want: closeChannelDeleted,
		},
		{
			name: "broker shutdown",
			trigger: func(t *testing.T, b *Broker, raw *rawClient) {
				raw.identify(t, map[string]any{})
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := b.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
			},
			want: closeBrokerShutdown,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			logs := &logBuffer{}
			b := startTestBroker(t, func(o *Options) {
				o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				if tc.tls {
					o.TLSCert, o.TLSKey, o.TLSRootCAFile = certFile, keyFile, caFile
				}
			})
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("broker log:\n%s", logs)
				}
			})
			raw := dialRaw(t, b)
			c := onlyClient(t, b)
			tc.trigger(t, b, raw)

			// The connection is gone once the broker forgets the client.
			waitFor(t, 10*time.Second, "the client to be removed", func() bool {
				b.mu.RLock()
				defer b.mu.RUnlock()
				return len(b.clients) == 0
			})
			if got := c.closeReason(); got != tc.want {
				t.Errorf("close reason %q, want %q", got, tc.want)
			}
			closes := logs.lines(`msg="client closed"`)
			if len(closes) != 1 {
				t.Fatalf("%d close lines logged, want 1: %q", len(closes), closes)
			}
			line := closes[0]
			level := "level=INFO"
			if tc.want == closeClientQuit {
				level = "level=DEBUG"
			}
			if !strings.Contains(line, level) || !strings.Contains(line, `reason="`+tc.want.String()+`"`) {
				t.Errorf("close logged as %q, want %s and reason %q", line, level, tc.want)
			}
			if tc.wantErr == "" && strings.Contains(line, " err=") {
				t.Errorf("close logged with an error: %q", line)
			}
			if tc.wantErr != "" && !strings.Contains(line, tc.wantErr) {
				t.Errorf("close logged as %q, want the error to say %q", line, tc.wantErr)
			}
		})
	}
}

func TestCloseReasonStrings(t *testing.T) {
	seen := map[string]closeReason{}
	for r := closeNone; r <= closeWriteTimeout; r++ {
		s := r.String()
		if s == "" || strings.HasPrefix(s, "closeReason(") {
			t.Errorf("closeReason %d has no name", r)
		}
		if other, dup := seen[s]; dup {
			t.Errorf("closeReason %d and %d are both %q", other, r, s)
		}
		seen[s] = r
	}
	if got := closeReason(99).String(); got != "closeReason(99)" {
		t.Errorf("unknown reason: %q", got)
	}
}
