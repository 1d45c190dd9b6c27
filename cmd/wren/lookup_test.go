package main

import (
	"errors"
	"flag"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"wren/lookup"
)

func TestParseLookupArgs(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		config string // TOML; when set, --config=<file> is added to args
		want   func(o *lookup.Options)
	}{
		{name: "defaults", want: func(o *lookup.Options) {}},
		{
			name: "every flag",
			args: []string{
				"--tcp-address=127.0.0.1:4260", "-http-address", "127.0.0.1:4261", "--broadcast-address=lookup.example",
				"--inactive-producer-timeout=1m", "--tombstone-lifetime=10s", "--log-level=debug", "--log-prefix=[lk] ",
			},
			want: func(o *lookup.Options) {
				o.TCPAddress = "127.0.0.1:4260"
				o.HTTPAddress = "127.0.0.1:4261"
				o.BroadcastAddress = "lookup.example"
				o.InactiveProducerTimeout = time.Minute
				o.TombstoneLifetime = 10 * time.Second
				o.LogLevel = "debug"
				o.LogPrefix = "[lk] "
			},
		},
		{
			name: "empty addresses disable listeners",
			args: []string{"--http-address="},
			want: func(o *lookup.Options) { o.HTTPAddress = "" },
		},
		{
			name:   "config overrides default",
			config: "tcp_address = \"127.0.0.1:5160\"\ntombstone_lifetime = \"90s\"\ninactive_producer_timeout = 60000",
			want: func(o *lookup.Options) {
				o.TCPAddress = "127.0.0.1:5160"
				o.TombstoneLifetime = 90 * time.Second
				o.InactiveProducerTimeout = time.Minute // integers count milliseconds, as in nsqd
			},
		},
		{
			name:   "flag overrides config",
			args:   []string{"--tombstone-lifetime=5s", "--log-prefix="},
			config: "tombstone_lifetime = \"90s\"\nlog_prefix = \"[x] \"\nbroadcast_address = \"b.example\"",
			want: func(o *lookup.Options) {
				o.TombstoneLifetime = 5 * time.Second
				o.LogPrefix = ""
				o.BroadcastAddress = "b.example"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"--config=" + writeConfig(t, tt.config)}, args...)
			}
			got, err := parseLookupArgs(args)
			if err != nil {
				t.Fatalf("parseLookupArgs(%q): %v", args, err)
			}
			want := lookup.NewOptions()
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parseLookupArgs(%q):\n got %+v\nwant %+v", args, got, want)
			}
		})
	}
}

func TestParseLookupArgsErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		config string
		want   string
	}{
		{name: "unknown flag", args: []string{"--bogus"}, want: "unknown flag --bogus"},
		{name: "broker flag", args: []string{"--data-path=/tmp"}, want: "unknown flag --data-path"},
		{name: "bad duration", args: []string{"--inactive-producer-timeout=5"}, want: `invalid value "5" for flag --inactive-producer-timeout: want a duration`},
		{name: "missing value", args: []string{"--tcp-address"}, want: "flag --tcp-address needs a value"},
		{name: "extra argument", args: []string{"now"}, want: `unexpected argument "now"`},
		{name: "validate", args: []string{"--log-level=loud"}, want: "--log-level"},
		{name: "config unknown key", config: "mem_queue_size = 3", want: `unknown key "mem_queue_size"`},
		{name: "config prefixed key", config: `lookup_tcp_address = "a:1"`, want: `unknown key "lookup_tcp_address"`},
		{name: "config wrong type", config: "tcp_address = 4160", want: "tcp_address: want a string, got integer 4160"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"--config=" + writeConfig(t, tt.config)}, args...)
			}
			_, err := parseLookupArgs(args)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseLookupArgs(%q) = %v, want an error containing %q", args, err, tt.want)
			}
		})
	}
	if _, err := parseLookupArgs([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("parseLookupArgs(-h) = %v, want flag.ErrHelp", err)
	}
	if _, err := parseLookupArgs([]string{"--version"}); !errors.Is(err, errVersionRequested) {
		t.Errorf("parseLookupArgs(--version) = %v, want errVersionRequested", err)
	}
}

// TestLookupFlagDefaults checks nsqlookupd's flag names and defaults.
func TestLookupFlagDefaults(t *testing.T) {
	flags, err := newLookupFlags(lookup.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"tcp-address":               "0.0.0.0:4160",
		"http-address":              "0.0.0.0:4161",
		"inactive-producer-timeout": "5m0s",
		"tombstone-lifetime":        "45s",
		"log-level":                 "info",
		"log-prefix":                "[nsqlookupd] ",
		"broadcast-address":         lookup.NewOptions().BroadcastAddress,
		"config":                    "",
		"version":                   "false",
	} {
		f := flags.set.Lookup(name)
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
}

func TestDialAddress(t *testing.T) {
	for addr, want := range map[string]string{
		"0.0.0.0:4160":   "127.0.0.1:4160",
		"[::]:4160":      "127.0.0.1:4160",
		"127.0.0.1:4160": "127.0.0.1:4160",
		"10.1.2.3:4160":  "10.1.2.3:4160",
		"[::1]:4160":     "[::1]:4160",
	} {
		tcp, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := dialAddress(tcp); got != want {
			t.Errorf("dialAddress(%s) = %s, want %s", addr, got, want)
		}
	}
}
