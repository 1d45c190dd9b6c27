package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"wren/broker"
)

// tlsFiles satisfies Validate for cases that turn TLS on; the files are
// never opened while parsing.
var tlsFiles = []string{"--tls-cert=cert.pem", "--tls-key=key.pem"}

func withTLSFiles(o *broker.Options) {
	o.TLSCert = "cert.pem"
	o.TLSKey = "key.pem"
}

// writeConfig writes a TOML file into a fresh directory and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nsqd.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseBrokerArgs(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		config string // TOML; when set, --config=<file> is added to args
		want   func(o *broker.Options)
	}{
		{name: "defaults", want: func(o *broker.Options) {}},
		{
			name: "double dash",
			args: []string{"--mem-queue-size=5", "--tcp-address", "127.0.0.1:4250"},
			want: func(o *broker.Options) { o.MemQueueSize = 5; o.TCPAddress = "127.0.0.1:4250" },
		},
		{
			name: "single dash",
			args: []string{"-mem-queue-size", "5"},
			want: func(o *broker.Options) { o.MemQueueSize = 5 },
		},
		{
			name: "int, duration and bool kinds",
			args: []string{"--max-deflate-level=9", "--msg-timeout=90s", "--snappy=false", "--statsd-exclude-ephemeral", "--sync-every=0x10"},
			want: func(o *broker.Options) {
				o.MaxDeflateLevel = 9
				o.MsgTimeout = 90 * time.Second
				o.SnappyEnabled = false
				o.StatsdExcludeEphemeral = true
				o.SyncEvery = 16
			},
		},
		{
			name: "empty string value",
			args: []string{"--http-address="},
			want: func(o *broker.Options) { o.HTTPAddress = "" },
		},
		{
			name: "repeatable list",
			args: []string{"--lookupd-tcp-address=a:4160", "--lookupd-tcp-address", "b:4160"},
			want: func(o *broker.Options) { o.LookupdTCPAddrs = []string{"a:4160", "b:4160"} },
		},
		{
			name: "comma-separated list, as nsqd resolves it",
			args: []string{"--auth-http-address=a:4181,b:4181", "--auth-http-address=c:4181"},
			want: func(o *broker.Options) { o.AuthHTTPAddresses = []string{"a:4181", "b:4181", "c:4181"} },
		},
		{
			name: "auth-http-request-method",
			args: []string{"--auth-http-request-method=post"},
			want: func(o *broker.Options) { o.AuthHTTPRequestMethod = "post" },
		},
		{
			name:   "auth_http_request_method from the config file",
			config: `auth_http_request_method = "post"`,
			want:   func(o *broker.Options) { o.AuthHTTPRequestMethod = "post" },
		},
		{
			name: "percentiles repeated and comma-separated",
			args: []string{"--e2e-processing-latency-percentile=1.0,0.99", "--e2e-processing-latency-percentile", "0.5"},
			want: func(o *broker.Options) { o.E2EProcessingLatencyPercentiles = []float64{1, 0.99, 0.5} },
		},
		{
			name: "tls-required bare means true",
			args: append([]string{"--tls-required"}, tlsFiles...),
			want: func(o *broker.Options) { withTLSFiles(o); o.TLSRequired = broker.TLSRequiredEverywhere },
		},
		{
			name: "tls-required=true",
			args: append([]string{"--tls-required=true"}, tlsFiles...),
			want: func(o *broker.Options) { withTLSFiles(o); o.TLSRequired = broker.TLSRequiredEverywhere },
		},
		{
			name: "tls-required=tcp-https",
			args: append([]string{"--tls-required=tcp-https"}, tlsFiles...),
			want: func(o *broker.Options) { withTLSFiles(o); o.TLSRequired = broker.TLSRequiredExceptHTTP },
		},
		{
			name: "tls-required=false",
			args: []string{"--tls-required=false"},
			want: func(o *broker.Options) { o.TLSRequired = broker.TLSNotRequired },
		},
		{
			name: "tls-min-version",
			args: []string{"--tls-min-version=tls1.2"},
			want: func(o *broker.Options) { o.TLSMinVersion = tls.VersionTLS12 },
		},
		{
			name:   "config overrides default",
			config: `mem_queue_size = 7`,
			want:   func(o *broker.Options) { o.MemQueueSize = 7 },
		},
		{
			name:   "flag overrides config",
			args:   []string{"--mem-queue-size=9"},
			config: "mem_queue_size = 7\nmax_rdy_count = 100",
			want:   func(o *broker.Options) { o.MemQueueSize = 9; o.MaxRdyCount = 100 },
		},
		{
			name:   "flag list replaces config list",
			args:   []string{"--lookupd-tcp-address=c:4160"},
			config: `nsqlookupd_tcp_addresses = ["a:4160", "b:4160"]`,
			want:   func(o *broker.Options) { o.LookupdTCPAddrs = []string{"c:4160"} },
		},
		{
			name:   "config lists use nsqd's plural keys",
			config: "nsqlookupd_tcp_addresses = [\"a:4160\", \"b:4160\"]\nauth_http_addresses = \"x:4181,y:4181\"",
			want: func(o *broker.Options) {
				o.LookupdTCPAddrs = []string{"a:4160", "b:4160"}
				o.AuthHTTPAddresses = []string{"x:4181", "y:4181"}
			},
		},
		{
			name:   "config percentiles array of ints and floats",
			config: `e2e_processing_latency_percentiles = [1, 0.99, 0.5]`,
			want:   func(o *broker.Options) { o.E2EProcessingLatencyPercentiles = []float64{1, 0.99, 0.5} },
		},
		{
			name:   "config percentiles as a string",
			config: `e2e_processing_latency_percentiles = "1.0, 0.95"`,
			want:   func(o *broker.Options) { o.E2EProcessingLatencyPercentiles = []float64{1, 0.95} },
		},
		{
			name:   "config durations: strings, and integers in milliseconds as nsqd reads them",
			config: "msg_timeout = \"90s\"\nsync_timeout = 500\nmax_req_timeout = \"2h\"",
			want: func(o *broker.Options) {
				o.MsgTimeout = 90 * time.Second
				o.SyncTimeout = 500 * time.Millisecond
				o.MaxReqTimeout = 2 * time.Hour
			},
		},
		{
			name:   "config scalars written as strings",
			config: "mem_queue_size = \"12\"\nsnappy = \"false\"",
			want:   func(o *broker.Options) { o.MemQueueSize = 12; o.SnappyEnabled = false },
		},
		{
			name:   "config bools, strings and TLS values",
			config: "deflate = false\nlog_level = \"debug\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\ntls_required = true\ntls_min_version = \"tls1.2\"",
			want: func(o *broker.Options) {
				withTLSFiles(o)
				o.DeflateEnabled = false
				o.LogLevel = "debug"
				o.TLSRequired = broker.TLSRequiredEverywhere
				o.TLSMinVersion = tls.VersionTLS12
			},
		},
		{
			name:   "config tls_required tcp-https",
			config: "tls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\ntls_required = \"tcp-https\"",
			want:   func(o *broker.Options) { withTLSFiles(o); o.TLSRequired = broker.TLSRequiredExceptHTTP },
		},
		{
			name:   "flag false beats config true",
			args:   []string{"--tls-required=false"},
			config: "tls_required = true",
			want:   func(o *broker.Options) { o.TLSRequired = broker.TLSNotRequired },
		},
		{
			name: "topology and a repeated experiment flag",
			args: []string{"--topology-region=eu", "--topology-zone=eu-1a", "--enable-experiment=topology-aware-consumption", "--enable-experiment=topology-aware-consumption"},
			want: func(o *broker.Options) {
				o.TopologyRegion, o.TopologyZone = "eu", "eu-1a"
				o.Experiments = []string{"topology-aware-consumption", "topology-aware-consumption"}
			},
		},
		{
			name:   "experiments from the config file",
			config: "enable_experiment = [\"topology-aware-consumption\"]\ntopology_zone = \"eu-1b\"",
			want: func(o *broker.Options) {
				o.TopologyZone = "eu-1b"
				o.Experiments = []string{"topology-aware-consumption"}
			},
		},
		{
			name:   "config-only option",
			config: `client_timeout = "30s"`,
			want:   func(o *broker.Options) { o.ClientTimeout = 30 * time.Second },
		},
		{
			name:   "empty config file",
			config: "# nothing\n",
			want:   func(o *broker.Options) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"--config=" + writeConfig(t, tt.config)}, args...)
			}
			got, err := parseBrokerArgs(args)
			if err != nil {
				t.Fatalf("parseBrokerArgs(%q): %v", args, err)
			}
			want := broker.NewOptions()
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("parseBrokerArgs(%q):\n got %+v\nwant %+v", args, got, want)
			}
		})
	}
}

func TestParseBrokerArgsErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		config string // TOML; when set, --config=<file> is added to args
		want   string // a substring of the error
	}{
		{name: "unknown flag", args: []string{"--bogus"}, want: "unknown flag --bogus"},
		{name: "unknown single-dash flag", args: []string{"-bogus=1"}, want: "unknown flag --bogus"},
		{name: "bad int", args: []string{"--mem-queue-size=abc"}, want: `invalid value "abc" for flag --mem-queue-size: want an integer`},
		{name: "int out of range", args: []string{"--broadcast-tcp-port=99999999999999999999"}, want: "--broadcast-tcp-port: out of range"},
		{name: "missing value", args: []string{"--mem-queue-size"}, want: "flag --mem-queue-size needs a value"},
		{name: "bad duration", args: []string{"--msg-timeout=5"}, want: `invalid value "5" for flag --msg-timeout: want a duration`},
		{name: "bad bool", args: []string{"--snappy=maybe"}, want: `invalid value "maybe" for flag --snappy`},
		{name: "bad tls-required", args: []string{"--tls-required=maybe"}, want: `invalid value "maybe" for flag --tls-required`},
		{name: "bad tls-min-version", args: []string{"--tls-min-version=tls9"}, want: `invalid value "tls9" for flag --tls-min-version`},
		{name: "bad percentile", args: []string{"--e2e-processing-latency-percentile=0.5,x"}, want: `for flag --e2e-processing-latency-percentile: want numbers`},
		{name: "percentile out of range", args: []string{"--e2e-processing-latency-percentile=1.5"}, want: "must be in (0,1]"},
		{name: "validate", args: []string{"--node-id=5000"}, want: "--node-id must be in [0,1024)"},
		{name: "memory queue with durable", args: []string{"--durable", "--mem-queue-size=500"}, want: "--mem-queue-size=500 has no effect with --durable"},
		{name: "queue scan workers", args: []string{"--queue-scan-worker-pool-max=8"}, want: "--queue-scan-worker-pool-max=8: wren has no queue scan workers"},
		{name: "queue scan selection", config: "queue_scan_selection_count = 40", want: "--queue-scan-selection-count=40: wren has no queue scan to tune"},
		{name: "bare bool takes no separate value", args: []string{"--tls-required", "tcp-https"}, want: `unexpected argument "tcp-https"`},
		{name: "missing config file", args: []string{"--config=/nonexistent/nsqd.toml"}, want: "config file /nonexistent/nsqd.toml"},
		{name: "config syntax", config: "mem_queue_size = = 3", want: "config file"},
		{name: "config unknown key", config: "mem_queue_size = 3\nbogus_key = 1", want: `unknown key "bogus_key"`},
		{name: "config unknown keys", config: "zz = 1\naa = 2", want: `unknown keys "aa", "zz"`},
		{name: "config flag name is not a key", config: `lookupd_tcp_address = ["a:4160"]`, want: `unknown key "lookupd_tcp_address"`},
		{name: "config wrong type", config: "mem_queue_size = true", want: "mem_queue_size: want an integer, got bool true"},
		{name: "config float duration", config: "msg_timeout = 1.5", want: "msg_timeout: want a duration string"},
		{name: "config bad duration string", config: `msg_timeout = "soon"`, want: "msg_timeout: want a duration"},
		{name: "config list of wrong type", config: "nsqlookupd_tcp_addresses = [1, 2]", want: "nsqlookupd_tcp_addresses: want an array of strings"},
		{name: "config bad percentiles", config: `e2e_processing_latency_percentiles = ["x"]`, want: "want an array of numbers"},
		{name: "config bad tls_required", config: `tls_required = "sometimes"`, want: "tls_required: want true, false or tcp-https"},
		{name: "config int overflow", config: "broadcast_tcp_port = 99999999999", want: "--broadcast-tcp-port out of range"},
		{name: "config value fails validation", config: "max_deflate_level = 10", want: "--max-deflate-level must be in [1,9]"},
		{name: "auth-http-request-method neither get nor post", args: []string{"--auth-http-request-method=PUT"}, want: `--auth-http-request-method must be get or post, got "PUT"`},
		{name: "unknown experiment", args: []string{"--enable-experiment=warp"}, want: `--enable-experiment: unknown experiment "warp" (valid: "topology-aware-consumption")`},
		{name: "config unknown experiment", config: `enable_experiment = ["warp"]`, want: `unknown experiment "warp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.config != "" {
				args = append([]string{"--config=" + writeConfig(t, tt.config)}, args...)
			}
			_, err := parseBrokerArgs(args)
			if err == nil {
				t.Fatalf("parseBrokerArgs(%q) succeeded, want an error containing %q", args, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseBrokerArgs(%q) = %q, want it to contain %q", args, err, tt.want)
			}
		})
	}
}

func TestParseBrokerArgsHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}} {
		if _, err := parseBrokerArgs(args); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("parseBrokerArgs(%q) = %v, want flag.ErrHelp", args, err)
		}
	}
	for _, args := range [][]string{{"--version"}, {"-version"}, {"--mem-queue-size=1", "--version"}} {
		if _, err := parseBrokerArgs(args); !errors.Is(err, errVersionRequested) {
			t.Errorf("parseBrokerArgs(%q) = %v, want errVersionRequested", args, err)
		}
	}
}

// TestEveryOptionIsReachable guards the reflection: each tagged field of
// broker.Options has a flag with help text, and config keys are unique.
func TestEveryOptionIsReachable(t *testing.T) {
	flags, err := newBrokerFlags(broker.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[broker.Options]()
	keys := make(map[string]string)
	for _, opt := range flags.options {
		if other, ok := keys[opt.configKey]; ok {
			t.Errorf("config key %q used by both --%s and --%s", opt.configKey, other, opt.flagName)
		}
		keys[opt.configKey] = opt.flagName
	}
	for i := range typ.NumField() {
		field := typ.Field(i)
		name := field.Tag.Get("flag")
		if name == "" {
			continue
		}
		f := flags.set.Lookup(name)
		if f == nil {
			t.Errorf("field %s: no flag --%s", field.Name, name)
			continue
		}
		if f.Usage == "" {
			t.Errorf("flag --%s has no help text", name)
		}
	}
	for _, key := range []string{"mem_queue_size", "nsqlookupd_tcp_addresses", "auth_http_addresses", "e2e_processing_latency_percentiles", "tls_required", "tls_min_version", "client_timeout"} {
		if _, ok := keys[key]; !ok {
			t.Errorf("config key %q missing", key)
		}
	}
}

func TestBindOptionsRejectsUnsupportedTypes(t *testing.T) {
	var opts struct {
		Limits map[string]int `flag:"limits"`
	}
	if _, err := bindOptions(&opts); err == nil || !strings.Contains(err.Error(), "Limits") {
		t.Errorf("bindOptions = %v, want an error naming the field", err)
	}
}

// TestFlagDefaultsShowNewOptions checks that usage shows NewOptions' values.
func TestFlagDefaultsShowNewOptions(t *testing.T) {
	flags, err := newBrokerFlags(broker.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"mem-queue-size":  "10000",
		"msg-timeout":     "1m0s",
		"tcp-address":     "0.0.0.0:4150",
		"snappy":          "true",
		"tls-required":    "false",
		"tls-min-version": "tls1.0",
		"log-prefix":      "[nsqd] ",
	} {
		if got := flags.set.Lookup(name).DefValue; got != want {
			t.Errorf("--%s default = %q, want %q", name, got, want)
		}
	}
}
