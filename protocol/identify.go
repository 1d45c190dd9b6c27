package protocol

import (
	"encoding/json"
	"fmt"
	"time"
)

// IdentifyData is the JSON body of IDENTIFY. Unknown fields are ignored.
type IdentifyData struct {
	ClientID            string `json:"client_id"`
	Hostname            string `json:"hostname"`
	UserAgent           string `json:"user_agent"`
	HeartbeatInterval   int    `json:"heartbeat_interval"`
	OutputBufferSize    int    `json:"output_buffer_size"`
	OutputBufferTimeout int    `json:"output_buffer_timeout"`
	FeatureNegotiation  bool   `json:"feature_negotiation"`
	TLSv1               bool   `json:"tls_v1"`
	Deflate             bool   `json:"deflate"`
	DeflateLevel        int    `json:"deflate_level"`
	Snappy              bool   `json:"snappy"`
	SampleRate          int32  `json:"sample_rate"`
	MsgTimeout          int    `json:"msg_timeout"`
	TopologyRegion      string `json:"topology_region"`
	TopologyZone        string `json:"topology_zone"`
}

// IdentifyLimits are the broker's bounds and defaults for IDENTIFY values.
type IdentifyLimits struct {
	DefaultHeartbeatInterval   time.Duration
	MaxHeartbeatInterval       time.Duration
	DefaultOutputBufferSize    int
	MaxOutputBufferSize        int
	DefaultOutputBufferTimeout time.Duration
	MinOutputBufferTimeout     time.Duration
	MaxOutputBufferTimeout     time.Duration
	DefaultMsgTimeout          time.Duration
	MaxMsgTimeout              time.Duration
	DeflateEnabled             bool
	MaxDeflateLevel            int
	SnappyEnabled              bool
	TLSEnabled                 bool
}

// ClientSettings are the values a client ends up with after IDENTIFY.
// A zero HeartbeatInterval or OutputBufferTimeout means disabled; an
// OutputBufferSize of 0 means unbuffered.
type ClientSettings struct {
	HeartbeatInterval   time.Duration
	OutputBufferSize    int
	OutputBufferTimeout time.Duration
	MsgTimeout          time.Duration
	SampleRate          int32
	TLS                 bool
	Deflate             bool
	DeflateLevel        int
	Snappy              bool
}

// DefaultClientSettings are the settings of a client that never identifies.
func DefaultClientSettings(l IdentifyLimits) ClientSettings {
	return ClientSettings{
		HeartbeatInterval:   l.DefaultHeartbeatInterval,
		OutputBufferSize:    l.DefaultOutputBufferSize,
		OutputBufferTimeout: l.DefaultOutputBufferTimeout,
		MsgTimeout:          l.DefaultMsgTimeout,
	}
}

// ParseIdentify decodes an IDENTIFY body.
func ParseIdentify(body []byte) (IdentifyData, *Error) {
	var d IdentifyData
	if err := json.Unmarshal(body, &d); err != nil {
		return IdentifyData{}, NewError(CodeBadBody, "IDENTIFY failed to decode JSON body").Wrap(err)
	}
	return d, nil
}

// Settings validates d against the limits and returns the resulting client
// settings, or the E_BAD_BODY or E_IDENTIFY_FAILED error nsqd would send.
func (d *IdentifyData) Settings(l IdentifyLimits) (ClientSettings, *Error) {
	s := DefaultClientSettings(l)
	ms := time.Millisecond

	switch hb := d.HeartbeatInterval; {
	case hb == -1:
		s.HeartbeatInterval = 0
	case hb == 0:
	case hb >= 1000 && hb <= msOf(l.MaxHeartbeatInterval):
		s.HeartbeatInterval = time.Duration(hb) * ms
	default:
		return s, badIdentify("heartbeat interval (%d) is invalid", hb)
	}

	switch timeout := d.OutputBufferTimeout; {
	case timeout == -1:
		s.OutputBufferTimeout = 0
	case timeout == 0:
	case timeout >= msOf(l.MinOutputBufferTimeout) && timeout <= msOf(l.MaxOutputBufferTimeout):
		s.OutputBufferTimeout = time.Duration(timeout) * ms
	default:
		return s, badIdentify("output buffer timeout (%d) is invalid", timeout)
	}

	switch size := d.OutputBufferSize; {
	case size == -1:
		// Unbuffered: every write goes straight out, so no timeout either.
		s.OutputBufferSize = 0
		s.OutputBufferTimeout = 0
	case size == 0:
	case size >= 64 && size <= l.MaxOutputBufferSize:
		s.OutputBufferSize = size
	default:
		return s, badIdentify("output buffer size (%d) is invalid", size)
	}

	if d.SampleRate < 0 || d.SampleRate > 99 {
		return s, badIdentify("sample rate (%d) is invalid", d.SampleRate)
	}
	s.SampleRate = d.SampleRate

	switch mt := d.MsgTimeout; {
	case mt == 0:
	case mt >= 1000 && mt <= msOf(l.MaxMsgTimeout):
		s.MsgTimeout = time.Duration(mt) * ms
	default:
		return s, badIdentify("msg timeout (%d) is invalid", mt)
	}

	if !d.FeatureNegotiation {
		// Without negotiation nsqd grants no upgrades and checks none.
		return s, nil
	}
	s.TLS = d.TLSv1 && l.TLSEnabled
	s.Deflate = d.Deflate && l.DeflateEnabled
	s.Snappy = d.Snappy && l.SnappyEnabled
	s.DeflateLevel = 6
	if s.Deflate && d.DeflateLevel > 0 {
		s.DeflateLevel = d.DeflateLevel
	}
	if s.DeflateLevel > l.MaxDeflateLevel {
		s.DeflateLevel = l.MaxDeflateLevel
	}
	if s.Deflate && s.Snappy {
		return s, NewError(CodeIdentifyFailed, "cannot enable both deflate and snappy compression")
	}
	return s, nil
}

// msOf is d in whole milliseconds. Limits are compared in milliseconds,
// as the client sent them, so a huge value cannot overflow a Duration
// and slip through.
func msOf(d time.Duration) int { return int(d / time.Millisecond) }

func badIdentify(format string, args ...any) *Error {
	return NewError(CodeBadBody, "IDENTIFY "+fmt.Sprintf(format, args...))
}

// IdentifyResponse is the JSON reply to IDENTIFY with feature_negotiation.
// Durations are in milliseconds.
type IdentifyResponse struct {
	MaxRdyCount         int64  `json:"max_rdy_count"`
	Version             string `json:"version"`
	MaxMsgTimeout       int64  `json:"max_msg_timeout"`
	MsgTimeout          int64  `json:"msg_timeout"`
	TLSv1               bool   `json:"tls_v1"`
	Deflate             bool   `json:"deflate"`
	DeflateLevel        int    `json:"deflate_level"`
	MaxDeflateLevel     int    `json:"max_deflate_level"`
	Snappy              bool   `json:"snappy"`
	SampleRate          int32  `json:"sample_rate"`
	AuthRequired        bool   `json:"auth_required"`
	OutputBufferSize    int    `json:"output_buffer_size"`
	OutputBufferTimeout int64  `json:"output_buffer_timeout"`
	TopologyRegion      string `json:"topology_region"` // the node's, "" when unset
	TopologyZone        string `json:"topology_zone"`
}
