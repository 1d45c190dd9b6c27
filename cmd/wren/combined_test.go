package main

import (
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"wren/broker"
	"wren/lookup"
)

func TestParseCombinedArgs(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		config     string // TOML; when set, --config=<file> is added to args
		wantBroker func(o *broker.Options)
		wantLookup func(o *lookup.Options) // nil: no lookup runs
	}{
		{
			name:       "defaults run both",
			wantBroker: func(o *broker.Options) {},
			wantLookup: func(o *lookup.Options) {},
		},
		{
			name: "prefixed lookup flags",
			args: []string{
				"--lookup-tcp-address=127.0.0.1:0", "-lookup-http-address", "127.0.0.1:0",
				"--lookup-inactive-producer-timeout=30s", "--lookup-tombstone-lifetime=1s",
			},
			wantBroker: func(o *broker.Options) {},
			wantLookup: func(o *lookup.Options) {
				o.TCPAddress = "127.0.0.1:0"
				o.HTTPAddress = "127.0.0.1:0"
				o.InactiveProducerTimeout = 30 * time.Second
				o.TombstoneLifetime = time.Second
			},
		},
		{
			name:       "unprefixed flags are the broker's",
			args:       []string{"--tcp-address=127.0.0.1:4250", "--http-address="},
			wantBroker: func(o *broker.Options) { o.TCPAddress = "127.0.0.1:4250"; o.HTTPAddress = "" },
			wantLookup: func(o *lookup.Options) {},
		},
		{
			name: "shared broadcast address and log level; the lookup keeps its log prefix",
			args: []string{"--broadcast-address=node.example", "--log-level=warn", "--log-prefix=[b] "},
			wantBroker: func(o *broker.Options) {
				o.BroadcastAddress = "node.example"
				o.LogLevel = "warn"
				o.LogPrefix = "[b] "
			},
			wantLookup: func(o *lookup.Options) { o.BroadcastAddress = "node.example"; o.LogLevel = "warn" },
		},
		{
			name:       "one lookup listener off",
			args:       []string{"--lookup-http-address="},
			wantBroker: func(o *broker.Options) {},
			wantLookup: func(o *lookup.Options) { o.HTTPAddress = "" },
		},
		{
			name:       "both lookup listeners off",
			args:       []string{"--lookup-tcp-address=", "--lookup-http-address="},
			wantBroker: func(o *broker.Options) {},
		},
		{
			name:       "lookup options are not validated when no lookup runs",
			args:       []string{"--lookup-tcp-address=", "--lookup-http-address=", "--lookup-tombstone-lifetime=-1s"},
			wantBroker: func(o *broker.Options) {},
		},
		{
			name:       "config keys for both",
			config:     "mem_queue_size = 7\nlookup_tcp_address = \"127.0.0.1:5160\"\nlookup_inactive_producer_timeout = \"2m\"\nlookup_tombstone_lifetime = 1000\nlookup_http_address = \"\"",
			wantBroker: func(o *broker.Options) { o.MemQueueSize = 7 },
			wantLookup: func(o *lookup.Options) {
				o.TCPAddress = "127.0.0.1:5160"
				o.HTTPAddress = ""
				o.InactiveProducerTimeout = 2 * time.Minute
				o.TombstoneLifetime = time.Second
			},
		},
		{
			name:       "flag overrides config",
			args:       []string{"--lookup-tcp-address=127.0.0.1:6160", "--mem-queue-size=9"},
			config:     "mem_queue_size = 7\nlookup_tcp_address = \"127.0.0.1:5160\"\nlookup_tombstone_lifetime = \"3s\"",
			wantBroker: func(o *broker.Options) { o.MemQueueSize = 9 },
			wantLookup: func(o *lookup.Options) { o.TCPAddress = "127.0.0.1:6160"; o.TombstoneLifetime = 3 * time.Second },
		},
		{
			name:       "config turns the lookup off",
			config:     "lookup_tcp_address = \"\"\nlookup_http_address = \"\"",
			wantBroker: func(o *broker.Options) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"--config=" + writeConfig(t, tt.config)}, args...)
			}
			gotBroker, gotLookup, err := parseCombinedArgs(args)
			if err != nil {
				t.Fatalf("parseCombinedArgs(%q): %v", args, err)
			}
			wantBroker := broker.NewOptions()
			tt.wantBroker(wantBroker)
			if !reflect.DeepEqual(gotBroker, wantBroker) {
				t.Errorf("broker options:\n got %+v\nwant %+v", gotBroker, wantBroker)
			}
			if tt.wantLookup == nil {
				if gotLookup != nil {
					t.Errorf("lookup options = %+v, want no lookup", gotLookup)
				}
				return
			}
			wantLookup := lookup.NewOptions()
			tt.wantLookup(wantLookup)
			if !reflect.DeepEqual(gotLookup, wantLookup) {
				t.Errorf("lookup options:\n got %+v\nwant %+v", gotLookup, wantLookup)
			}
		})
	}
}

func TestParseCombinedArgsErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		config string
		want   string
	}{
		{name: "lookup flag unprefixed is the broker's", args: []string{"--tombstone-lifetime=1s"}, want: "unknown flag --tombstone-lifetime"},
		{name: "lookup's own log prefix is not a flag", args: []string{"--lookup-log-prefix=x"}, want: "unknown flag --lookup-log-prefix"},
		{name: "lookup broadcast address is the broker's", args: []string{"--lookup-broadcast-address=x"}, want: "unknown flag --lookup-broadcast-address"},
		{name: "bad duration", args: []string{"--lookup-tombstone-lifetime=x"}, want: `invalid value "x" for flag --lookup-tombstone-lifetime`},
		{name: "validation names the prefixed flag", args: []string{"--lookup-http-address=nope"}, want: "--lookup-http-address: "},
		{name: "validation of both", args: []string{"--node-id=5000", "--lookup-inactive-producer-timeout=0s"}, want: "--node-id must be in [0,1024), got 5000\n--lookup-inactive-producer-timeout must be > 0"},
		{name: "config unprefixed lookup key", config: `tombstone_lifetime = "1s"`, want: `unknown key "tombstone_lifetime"`},
		{name: "config lookup key of the broker", config: `lookup_log_level = "debug"`, want: `unknown key "lookup_log_level"`},
		{name: "config wrong type", config: `lookup_tcp_address = 4160`, want: "lookup_tcp_address: want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"--config=" + writeConfig(t, tt.config)}, args...)
			}
			_, _, err := parseCombinedArgs(args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseCombinedArgs(%q) = %v, want an error containing %q", args, err, tt.want)
			}
		})
	}
}

// TestCombinedFlagDefaults checks the prefixed lookup flags' names,
// defaults and help, and that every broker flag is there unchanged.
func TestCombinedFlagDefaults(t *testing.T) {
	combined, err := newCombinedFlags(broker.NewOptions(), lookup.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"lookup-tcp-address":               "0.0.0.0:4160",
		"lookup-http-address":              "0.0.0.0:4161",
		"lookup-inactive-producer-timeout": "5m0s",
		"lookup-tombstone-lifetime":        "45s",
		"tcp-address":                      "0.0.0.0:4150",
		"log-prefix":                       "[nsqd] ",
	} {
		f := combined.flags.set.Lookup(name)
		if f == nil {
			t.Errorf("no flag --%s", name)
			continue
		}
		if f.DefValue != want {
			t.Errorf("--%s default = %q, want %q", name, f.DefValue, want)
		}
		if f.Usage == "" {
			t.Errorf("flag --%s has no help text", name)
		}
	}
	brokerFlags, err := newBrokerFlags(broker.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range brokerFlags.options {
		if opt.flagName != "" && combined.flags.set.Lookup(opt.flagName) == nil {
			t.Errorf("combined mode lacks broker flag --%s", opt.flagName)
		}
	}
	var keys []string
	for _, opt := range combined.lookupOptions {
		keys = append(keys, opt.configKey)
	}
	wantKeys := []string{"lookup_tcp_address", "lookup_http_address", "lookup_inactive_producer_timeout", "lookup_tombstone_lifetime"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("lookup config keys = %q, want %q", keys, wantKeys)
	}
}

func TestBindSomeOptions(t *testing.T) {
	var opts struct {
		Address  string        `flag:"tcp-address"`
		Timeout  time.Duration `flag:"timeout" cfg:"the_timeout"`
		Skipped  int           `flag:"skipped"`
		Untagged string
	}
	options, err := bindSomeOptions(&opts, "lookup-", []string{"timeout", "tcp-address"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, opt := range options {
		got = append(got, opt.flagName+" "+opt.configKey)
	}
	want := []string{"lookup-tcp-address lookup_tcp_address", "lookup-timeout lookup_the_timeout"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bound %q, want %q", got, want)
	}
	if _, err := bindSomeOptions(&opts, "lookup-", []string{"tcp-address", "renamed"}); err == nil || !strings.Contains(err.Error(), `"renamed"`) {
		t.Errorf("binding a missing field: %v, want an error naming it", err)
	}
}

// TestRunCombinedStartFailure checks that a start failure of either server
// is reported on one last line with exit status 1, after whatever had
// started is shut down.
func TestRunCombinedStartFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyAddr := busy.Addr().String()

	t.Run("broker", func(t *testing.T) {
		stderr := &lockedBuffer{changed: make(chan struct{}, 1)}
		code := run([]string{
			"--tcp-address=" + busyAddr, "--http-address=", "--https-address=", "--data-path=" + t.TempDir(),
			"--lookup-tcp-address=127.0.0.1:0", "--lookup-http-address=127.0.0.1:0",
		}, io.Discard, stderr)
		out := stderr.String()
		if code != 1 {
			t.Fatalf("exit status %d, want 1; stderr:\n%s", code, out)
		}
		if last := lastLine(out); !strings.HasPrefix(last, "wren: listen on --tcp-address="+busyAddr) {
			t.Errorf("last line %q, want the broker's listen error", last)
		}
		// The lookup had started; its ports must be free again.
		match := lookupListeningLine.FindStringSubmatch(out)
		if match == nil {
			t.Fatalf("no lookup listening line; stderr:\n%s", out)
		}
		for _, addr := range match[1:] {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("lookup address %s still in use: %v", addr, err)
				continue
			}
			l.Close()
		}
	})
	t.Run("lookup", func(t *testing.T) {
		stderr := &lockedBuffer{changed: make(chan struct{}, 1)}
		code := run([]string{
			"--tcp-address=127.0.0.1:0", "--http-address=", "--https-address=", "--data-path=" + t.TempDir(),
			"--lookup-tcp-address=127.0.0.1:0", "--lookup-http-address=" + busyAddr,
		}, io.Discard, stderr)
		out := stderr.String()
		if code != 1 {
			t.Fatalf("exit status %d, want 1; stderr:\n%s", code, out)
		}
		if last := lastLine(out); !strings.HasPrefix(last, "wren: listen on --lookup-http-address="+busyAddr) {
			t.Errorf("last line %q, want the lookup's listen error under its combined flag name", last)
		}
		if strings.Contains(out, "broker listening") {
			t.Errorf("the broker started after the lookup failed; stderr:\n%s", out)
		}
	})
}
