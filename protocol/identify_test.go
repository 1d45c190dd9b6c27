package protocol_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"wren/protocol"
)

// nsqdLimits are nsqd 1.3.0's defaults, as broker.NewOptions sets them.
func nsqdLimits() protocol.IdentifyLimits {
	return protocol.IdentifyLimits{
		DefaultHeartbeatInterval:   30 * time.Second,
		MaxHeartbeatInterval:       60 * time.Second,
		DefaultOutputBufferSize:    16 * 1024,
		MaxOutputBufferSize:        64 * 1024,
		DefaultOutputBufferTimeout: 250 * time.Millisecond,
		MinOutputBufferTimeout:     25 * time.Millisecond,
		MaxOutputBufferTimeout:     30 * time.Second,
		DefaultMsgTimeout:          60 * time.Second,
		MaxMsgTimeout:              15 * time.Minute,
		DeflateEnabled:             true,
		MaxDeflateLevel:            6,
		SnappyEnabled:              true,
		TLSEnabled:                 false,
	}
}

// goNSQIdentify is the body go-nsq 1.1.0 sends with its default config.
const goNSQIdentify = `{"client_id":"host","deflate":false,"deflate_level":6,` +
	`"feature_negotiation":true,"heartbeat_interval":30000,"hostname":"host.example",` +
	`"long_id":"host.example","msg_timeout":0,"output_buffer_size":16384,` +
	`"output_buffer_timeout":250,"sample_rate":0,"short_id":"host","snappy":false,` +
	`"tls_v1":false,"user_agent":"go-nsq/1.1.0"}`

func TestParseIdentify(t *testing.T) {
	d, perr := protocol.ParseIdentify([]byte(goNSQIdentify))
	if perr != nil {
		t.Fatalf("ParseIdentify: %v", perr)
	}
	want := protocol.IdentifyData{
		ClientID: "host", Hostname: "host.example", UserAgent: "go-nsq/1.1.0",
		HeartbeatInterval: 30000, OutputBufferSize: 16384, OutputBufferTimeout: 250,
		FeatureNegotiation: true, DeflateLevel: 6,
	}
	if d != want {
		t.Errorf("ParseIdentify = %+v, want %+v", d, want)
	}
}

func TestParseIdentifyBadJSON(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"not JSON", "hello"},
		{"truncated", `{"client_id":"a"`},
		{"wrong type", `{"heartbeat_interval":"30000"}`},
		{"sample rate past int32", `{"sample_rate":2147483648}`},
		{"fraction", `{"msg_timeout":1.5}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, perr := protocol.ParseIdentify([]byte(tc.body))
			if perr == nil {
				t.Fatal("ParseIdentify succeeded, want E_BAD_BODY")
			}
			if got := perr.Wire(); got != "E_BAD_BODY IDENTIFY failed to decode JSON body" || !perr.Fatal {
				t.Errorf("error = %q fatal=%v", got, perr.Fatal)
			}
			if perr.Cause == nil {
				t.Error("the JSON error is not kept as the cause")
			}
		})
	}
	t.Run("cause is the JSON error", func(t *testing.T) {
		_, perr := protocol.ParseIdentify([]byte("{"))
		var syntaxErr *json.SyntaxError
		if !errors.As(perr, &syntaxErr) {
			t.Errorf("cause = %T", perr.Cause)
		}
	})
}

func TestParseIdentifyIgnoresUnknownFields(t *testing.T) {
	d, perr := protocol.ParseIdentify([]byte(`{"client_id":"c","long_id":"l","short_id":"s","future":{"x":[1,2]}}`))
	if perr != nil || d.ClientID != "c" {
		t.Errorf("ParseIdentify = %+v, %v", d, perr)
	}
}

func TestIdentifySettings(t *testing.T) {
	ms := time.Millisecond
	l := nsqdLimits()
	def := protocol.DefaultClientSettings(l)
	with := func(change func(s *protocol.ClientSettings)) protocol.ClientSettings {
		s := def
		change(&s)
		return s
	}
	tests := []struct {
		name    string
		data    protocol.IdentifyData
		limits  func(*protocol.IdentifyLimits)
		want    protocol.ClientSettings
		wantErr string // the error frame's text
	}{
		{name: "all zero keeps defaults", want: def},

		{name: "heartbeat -1 disables", data: protocol.IdentifyData{HeartbeatInterval: -1}, want: with(func(s *protocol.ClientSettings) { s.HeartbeatInterval = 0 })},
		{name: "heartbeat 0 keeps default", data: protocol.IdentifyData{HeartbeatInterval: 0}, want: def},
		{name: "heartbeat -2", data: protocol.IdentifyData{HeartbeatInterval: -2}, wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (-2) is invalid"},
		{name: "heartbeat 100", data: protocol.IdentifyData{HeartbeatInterval: 100}, wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (100) is invalid"},
		{name: "heartbeat 999", data: protocol.IdentifyData{HeartbeatInterval: 999}, wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (999) is invalid"},
		{name: "heartbeat 1000", data: protocol.IdentifyData{HeartbeatInterval: 1000}, want: with(func(s *protocol.ClientSettings) { s.HeartbeatInterval = time.Second })},
		{name: "heartbeat max", data: protocol.IdentifyData{HeartbeatInterval: 60000}, want: with(func(s *protocol.ClientSettings) { s.HeartbeatInterval = time.Minute })},
		{name: "heartbeat max+1", data: protocol.IdentifyData{HeartbeatInterval: 60001}, wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (60001) is invalid"},

		{name: "buffer size -1 is unbuffered with no timeout", data: protocol.IdentifyData{OutputBufferSize: -1}, want: with(func(s *protocol.ClientSettings) { s.OutputBufferSize = 0; s.OutputBufferTimeout = 0 })},
		{name: "buffer size -1 keeps size 0", data: protocol.IdentifyData{OutputBufferSize: -1, OutputBufferTimeout: -1}, want: with(func(s *protocol.ClientSettings) { s.OutputBufferSize = 0; s.OutputBufferTimeout = 0 })},
		{name: "buffer size 0 keeps default", data: protocol.IdentifyData{OutputBufferSize: 0}, want: def},
		{name: "buffer size -2", data: protocol.IdentifyData{OutputBufferSize: -2}, wantErr: "E_BAD_BODY IDENTIFY output buffer size (-2) is invalid"},
		{name: "buffer size 63", data: protocol.IdentifyData{OutputBufferSize: 63}, wantErr: "E_BAD_BODY IDENTIFY output buffer size (63) is invalid"},
		{name: "buffer size 64", data: protocol.IdentifyData{OutputBufferSize: 64}, want: with(func(s *protocol.ClientSettings) { s.OutputBufferSize = 64 })},
		{name: "buffer size max", data: protocol.IdentifyData{OutputBufferSize: 65536}, want: with(func(s *protocol.ClientSettings) { s.OutputBufferSize = 65536 })},
		{name: "buffer size max+1", data: protocol.IdentifyData{OutputBufferSize: 65537}, wantErr: "E_BAD_BODY IDENTIFY output buffer size (65537) is invalid"},

		{name: "buffer timeout -1 disables", data: protocol.IdentifyData{OutputBufferTimeout: -1}, want: with(func(s *protocol.ClientSettings) { s.OutputBufferTimeout = 0 })},
		{name: "buffer timeout 0 keeps default", data: protocol.IdentifyData{OutputBufferTimeout: 0}, want: def},
		{name: "buffer timeout -2", data: protocol.IdentifyData{OutputBufferTimeout: -2}, wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (-2) is invalid"},
		{name: "buffer timeout 1", data: protocol.IdentifyData{OutputBufferTimeout: 1}, wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (1) is invalid"},
		{name: "buffer timeout below min", data: protocol.IdentifyData{OutputBufferTimeout: 24}, wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (24) is invalid"},
		{name: "buffer timeout min", data: protocol.IdentifyData{OutputBufferTimeout: 25}, want: with(func(s *protocol.ClientSettings) { s.OutputBufferTimeout = 25 * ms })},
		{name: "buffer timeout max", data: protocol.IdentifyData{OutputBufferTimeout: 30000}, want: with(func(s *protocol.ClientSettings) { s.OutputBufferTimeout = 30 * time.Second })},
		{name: "buffer timeout max+1", data: protocol.IdentifyData{OutputBufferTimeout: 30001}, wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (30001) is invalid"},
		{name: "timeout checked before size", data: protocol.IdentifyData{OutputBufferSize: 1, OutputBufferTimeout: -5}, wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (-5) is invalid"},

		{name: "sample rate -1", data: protocol.IdentifyData{SampleRate: -1}, wantErr: "E_BAD_BODY IDENTIFY sample rate (-1) is invalid"},
		{name: "sample rate 0", data: protocol.IdentifyData{SampleRate: 0}, want: def},
		{name: "sample rate 99", data: protocol.IdentifyData{SampleRate: 99}, want: with(func(s *protocol.ClientSettings) { s.SampleRate = 99 })},
		{name: "sample rate 100", data: protocol.IdentifyData{SampleRate: 100}, wantErr: "E_BAD_BODY IDENTIFY sample rate (100) is invalid"},

		{name: "msg timeout 0 keeps default", data: protocol.IdentifyData{MsgTimeout: 0}, want: def},
		{name: "msg timeout -1", data: protocol.IdentifyData{MsgTimeout: -1}, wantErr: "E_BAD_BODY IDENTIFY msg timeout (-1) is invalid"},
		{name: "msg timeout 999", data: protocol.IdentifyData{MsgTimeout: 999}, wantErr: "E_BAD_BODY IDENTIFY msg timeout (999) is invalid"},
		{name: "msg timeout 1000", data: protocol.IdentifyData{MsgTimeout: 1000}, want: with(func(s *protocol.ClientSettings) { s.MsgTimeout = time.Second })},
		{name: "msg timeout max", data: protocol.IdentifyData{MsgTimeout: 900000}, want: with(func(s *protocol.ClientSettings) { s.MsgTimeout = 15 * time.Minute })},
		{name: "msg timeout max+1", data: protocol.IdentifyData{MsgTimeout: 900001}, wantErr: "E_BAD_BODY IDENTIFY msg timeout (900001) is invalid"},

		{name: "overflowing heartbeat", data: protocol.IdentifyData{HeartbeatInterval: 18446744073710}, wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (18446744073710) is invalid"},
		{name: "overflowing buffer timeout", data: protocol.IdentifyData{OutputBufferTimeout: 18446744073735}, wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (18446744073735) is invalid"},
		{name: "overflowing heartbeat to negative", data: protocol.IdentifyData{HeartbeatInterval: 9223372036855}, wantErr: "E_BAD_BODY IDENTIFY heartbeat interval (9223372036855) is invalid"},
		{name: "overflowing negative buffer timeout", data: protocol.IdentifyData{OutputBufferTimeout: -18446744073684}, wantErr: "E_BAD_BODY IDENTIFY output buffer timeout (-18446744073684) is invalid"},
		{name: "overflowing msg timeout", data: protocol.IdentifyData{MsgTimeout: 18446744074710}, wantErr: "E_BAD_BODY IDENTIFY msg timeout (18446744074710) is invalid"},

		{name: "no negotiation grants nothing", data: protocol.IdentifyData{TLSv1: true, Deflate: true, DeflateLevel: 3, Snappy: true},
			limits: func(l *protocol.IdentifyLimits) { l.TLSEnabled = true }, want: def},
		{name: "negotiation without features", data: protocol.IdentifyData{FeatureNegotiation: true},
			want: with(func(s *protocol.ClientSettings) { s.DeflateLevel = 6 })},
		{name: "snappy and deflate", data: protocol.IdentifyData{FeatureNegotiation: true, Deflate: true, Snappy: true},
			wantErr: "E_IDENTIFY_FAILED cannot enable both deflate and snappy compression"},
		{name: "snappy and deflate, snappy disabled", data: protocol.IdentifyData{FeatureNegotiation: true, Deflate: true, Snappy: true},
			limits: func(l *protocol.IdentifyLimits) { l.SnappyEnabled = false },
			want:   with(func(s *protocol.ClientSettings) { s.Deflate = true; s.DeflateLevel = 6 })},
		{name: "snappy", data: protocol.IdentifyData{FeatureNegotiation: true, Snappy: true},
			want: with(func(s *protocol.ClientSettings) { s.Snappy = true; s.DeflateLevel = 6 })},
		{name: "snappy disabled", data: protocol.IdentifyData{FeatureNegotiation: true, Snappy: true},
			limits: func(l *protocol.IdentifyLimits) { l.SnappyEnabled = false },
			want:   with(func(s *protocol.ClientSettings) { s.DeflateLevel = 6 })},
		{name: "deflate level 0 is 6", data: protocol.IdentifyData{FeatureNegotiation: true, Deflate: true},
			limits: func(l *protocol.IdentifyLimits) { l.MaxDeflateLevel = 9 },
			want:   with(func(s *protocol.ClientSettings) { s.Deflate = true; s.DeflateLevel = 6 })},
		{name: "deflate level -1 is 6", data: protocol.IdentifyData{FeatureNegotiation: true, Deflate: true, DeflateLevel: -1},
			limits: func(l *protocol.IdentifyLimits) { l.MaxDeflateLevel = 9 },
			want:   with(func(s *protocol.ClientSettings) { s.Deflate = true; s.DeflateLevel = 6 })},
		{name: "deflate level 3", data: protocol.IdentifyData{FeatureNegotiation: true, Deflate: true, DeflateLevel: 3},
			want: with(func(s *protocol.ClientSettings) { s.Deflate = true; s.DeflateLevel = 3 })},
		{name: "deflate level clamped", data: protocol.IdentifyData{FeatureNegotiation: true, Deflate: true, DeflateLevel: 9},
			want: with(func(s *protocol.ClientSettings) { s.Deflate = true; s.DeflateLevel = 6 })},
		{name: "deflate level 9 allowed", data: protocol.IdentifyData{FeatureNegotiation: true, Deflate: true, DeflateLevel: 9},
			limits: func(l *protocol.IdentifyLimits) { l.MaxDeflateLevel = 9 },
			want:   with(func(s *protocol.ClientSettings) { s.Deflate = true; s.DeflateLevel = 9 })},
		{name: "default level clamped to a low max", data: protocol.IdentifyData{FeatureNegotiation: true},
			limits: func(l *protocol.IdentifyLimits) { l.MaxDeflateLevel = 3 },
			want:   with(func(s *protocol.ClientSettings) { s.DeflateLevel = 3 })},
		{name: "level ignored without deflate", data: protocol.IdentifyData{FeatureNegotiation: true, DeflateLevel: 2},
			want: with(func(s *protocol.ClientSettings) { s.DeflateLevel = 6 })},
		{name: "deflate disabled", data: protocol.IdentifyData{FeatureNegotiation: true, Deflate: true, DeflateLevel: 2},
			limits: func(l *protocol.IdentifyLimits) { l.DeflateEnabled = false },
			want:   with(func(s *protocol.ClientSettings) { s.DeflateLevel = 6 })},
		{name: "tls without a certificate", data: protocol.IdentifyData{FeatureNegotiation: true, TLSv1: true},
			want: with(func(s *protocol.ClientSettings) { s.DeflateLevel = 6 })},
		{name: "tls", data: protocol.IdentifyData{FeatureNegotiation: true, TLSv1: true},
			limits: func(l *protocol.IdentifyLimits) { l.TLSEnabled = true },
			want:   with(func(s *protocol.ClientSettings) { s.TLS = true; s.DeflateLevel = 6 })},
		{name: "tls with snappy", data: protocol.IdentifyData{FeatureNegotiation: true, TLSv1: true, Snappy: true},
			limits: func(l *protocol.IdentifyLimits) { l.TLSEnabled = true },
			want:   with(func(s *protocol.ClientSettings) { s.TLS = true; s.Snappy = true; s.DeflateLevel = 6 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			limits := nsqdLimits()
			if tc.limits != nil {
				tc.limits(&limits)
			}
			got, perr := tc.data.Settings(limits)
			if tc.wantErr != "" {
				if perr == nil {
					t.Fatalf("Settings = %+v, want %q", got, tc.wantErr)
				}
				if perr.Wire() != tc.wantErr || !perr.Fatal {
					t.Errorf("Settings error = %q fatal=%v, want %q", perr.Wire(), perr.Fatal, tc.wantErr)
				}
				return
			}
			if perr != nil {
				t.Fatalf("Settings: %v", perr)
			}
			if got != tc.want {
				t.Errorf("Settings = %+v\nwant       %+v", got, tc.want)
			}
		})
	}
}

func TestIdentifySettingsGoNSQDefaults(t *testing.T) {
	d, perr := protocol.ParseIdentify([]byte(goNSQIdentify))
	if perr != nil {
		t.Fatal(perr)
	}
	got, perr := d.Settings(nsqdLimits())
	if perr != nil {
		t.Fatal(perr)
	}
	want := protocol.ClientSettings{
		HeartbeatInterval:   30 * time.Second,
		OutputBufferSize:    16384,
		OutputBufferTimeout: 250 * time.Millisecond,
		MsgTimeout:          60 * time.Second,
		DeflateLevel:        6,
	}
	if got != want {
		t.Errorf("Settings = %+v, want %+v", got, want)
	}
}
