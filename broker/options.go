package broker

import (
	"crypto/md5"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Options configure a broker. NewOptions returns nsqd v1.3.0's defaults. The
// `flag` tag is the nsqd flag name; the config-file key and the name used by
// GET /config/:opt is the `cfg` tag, or the flag name with "-" turned to "_".
// Fields without a flag tag are set only from code.
type Options struct {
	NodeID    int64  `flag:"node-id" help:"unique part for message IDs, (int) in range [0,1024)"`
	LogLevel  string `flag:"log-level" help:"set log verbosity: debug, info, warn, error, or fatal"`
	LogPrefix string `flag:"log-prefix" help:"log message prefix"`

	TCPAddress        string   `flag:"tcp-address" help:"<addr>:<port> to listen on for TCP clients"`
	HTTPAddress       string   `flag:"http-address" help:"<addr>:<port> to listen on for HTTP clients (empty disables)"`
	HTTPSAddress      string   `flag:"https-address" help:"<addr>:<port> to listen on for HTTPS clients (needs --tls-cert)"`
	BroadcastAddress  string   `flag:"broadcast-address" help:"address that will be registered with lookupd (defaults to the OS hostname)"`
	BroadcastTCPPort  int      `flag:"broadcast-tcp-port" help:"TCP port that will be registered with lookupd (0: the real TCP port)"`
	BroadcastHTTPPort int      `flag:"broadcast-http-port" help:"HTTP port that will be registered with lookupd (0: the real HTTP port)"`
	LookupdTCPAddrs   []string `flag:"lookupd-tcp-address" cfg:"nsqlookupd_tcp_addresses" help:"lookupd TCP address (may be given multiple times)"`

	AuthHTTPAddresses        []string      `flag:"auth-http-address" cfg:"auth_http_addresses" help:"<addr>:<port> or a full URL to query the auth server (may be given multiple times)"`
	AuthHTTPRequestMethod    string        `flag:"auth-http-request-method" cfg:"auth_http_request_method" help:"HTTP method to use for auth server requests (get or post)"`
	HTTPClientConnectTimeout time.Duration `flag:"http-client-connect-timeout" help:"timeout for HTTP connect"`
	HTTPClientRequestTimeout time.Duration `flag:"http-client-request-timeout" help:"timeout for HTTP request"`
	TopologyRegion           string        `flag:"topology-region" help:"a region represents a larger domain, made up of one or more zones, for preferring closer consumers"`
	TopologyZone             string        `flag:"topology-zone" help:"a zone represents a logical failure domain, for preferring closer consumers"`

	DataPath        string        `flag:"data-path" help:"path to store disk-backed messages"`
	MemQueueSize    int64         `flag:"mem-queue-size" help:"number of messages to keep in memory (per topic/channel)"`
	MaxBytesPerFile int64         `flag:"max-bytes-per-file" help:"number of bytes per diskqueue file before rolling"`
	SyncEvery       int64         `flag:"sync-every" help:"number of messages per diskqueue fsync"`
	SyncTimeout     time.Duration `flag:"sync-timeout" help:"duration of time per diskqueue fsync"`
	Durable         bool          `flag:"durable" help:"answer PUB, MPUB, DPUB and HTTP /pub, /mpub only once the messages are fsynced to disk (wren only; implies --mem-queue-size=0; concurrent publishers share fsyncs)"`

	QueueScanWorkerPoolMax  int `flag:"queue-scan-worker-pool-max" help:"only nsqd's default (4) is accepted: wren times messages out per client, on time, and has no scan workers to size"`
	QueueScanSelectionCount int `flag:"queue-scan-selection-count" help:"only nsqd's default (20) is accepted: wren has no queue scan to tune"`

	MsgTimeout    time.Duration `flag:"msg-timeout" help:"default duration to wait before auto-requeing a message"`
	MaxMsgTimeout time.Duration `flag:"max-msg-timeout" help:"maximum duration before a message will timeout"`
	MaxMsgSize    int64         `flag:"max-msg-size" help:"maximum size of a single message in bytes"`
	MaxReqTimeout time.Duration `flag:"max-req-timeout" help:"maximum requeuing timeout for a message"`
	MaxBodySize   int64         `flag:"max-body-size" help:"maximum size of a single command body"`

	MaxHeartbeatInterval   time.Duration `flag:"max-heartbeat-interval" help:"maximum client configurable duration of time between client heartbeats"`
	MaxRdyCount            int64         `flag:"max-rdy-count" help:"maximum RDY count for a client"`
	MaxOutputBufferSize    int64         `flag:"max-output-buffer-size" help:"maximum client configurable size (in bytes) for a client output buffer"`
	MaxOutputBufferTimeout time.Duration `flag:"max-output-buffer-timeout" help:"maximum client configurable duration of time between flushing to a client"`
	MinOutputBufferTimeout time.Duration `flag:"min-output-buffer-timeout" help:"minimum client configurable duration of time between flushing to a client"`
	OutputBufferTimeout    time.Duration `flag:"output-buffer-timeout" help:"default duration of time between flushing data to clients"`
	MaxChannelConsumers    int           `flag:"max-channel-consumers" help:"maximum channel consumer connection count per nsqd instance (default 0, i.e., unlimited)"`
	ClientTimeout          time.Duration `cfg:"client_timeout"`

	StatsdAddress          string        `flag:"statsd-address" help:"UDP <addr>:<port> of a statsd daemon for pushing stats"`
	StatsdPrefix           string        `flag:"statsd-prefix" help:"prefix used for keys sent to statsd (%s for host replacement)"`
	StatsdInterval         time.Duration `flag:"statsd-interval" help:"duration between pushing to statsd"`
	StatsdMemStats         bool          `flag:"statsd-mem-stats" help:"toggle sending memory and GC stats to statsd"`
	StatsdUDPPacketSize    int           `flag:"statsd-udp-packet-size" help:"the size in bytes of statsd UDP packets"`
	StatsdExcludeEphemeral bool          `flag:"statsd-exclude-ephemeral" help:"skip ephemeral topics and channels when sending stats to statsd"`

	E2EProcessingLatencyPercentiles []float64     `flag:"e2e-processing-latency-percentile" cfg:"e2e_processing_latency_percentiles" help:"message processing time percentiles (as float (0, 1.0]) to track (can be specified multiple times or comma separated '1.0,0.99,0.95', default none)"`
	E2EProcessingLatencyWindowTime  time.Duration `flag:"e2e-processing-latency-window-time" help:"calculate end to end latency quantiles for this duration of time (e.g. 60s would only show quantile calculations from the past 60 seconds)"`

	TLSCert             string      `flag:"tls-cert" help:"path to certificate file"`
	TLSKey              string      `flag:"tls-key" help:"path to key file"`
	TLSClientAuthPolicy string      `flag:"tls-client-auth-policy" help:"client certificate auth policy ('require' or 'require-verify')"`
	TLSRootCAFile       string      `flag:"tls-root-ca-file" help:"path to certificate authority file"`
	TLSRequired         TLSRequired `flag:"tls-required" help:"require TLS for client connections (true, false, tcp-https)"`
	TLSMinVersion       TLSVersion  `flag:"tls-min-version" help:"minimum SSL/TLS version acceptable ('ssl3.0', 'tls1.0', 'tls1.1', 'tls1.2' or 'tls1.3')"`

	DeflateEnabled  bool `flag:"deflate" help:"enable deflate feature negotiation (client compression)"`
	MaxDeflateLevel int  `flag:"max-deflate-level" help:"max deflate compression level a client can negotiate (> values == > nsqd CPU usage)"`
	SnappyEnabled   bool `flag:"snappy" help:"enable snappy feature negotiation (client compression)"`

	Experiments []string `flag:"enable-experiment" cfg:"enable_experiment" help:"enable an experimental feature (may be given multiple times) (valid options: \"topology-aware-consumption\")"`

	// LocalLookupTCPAddress is the TCP address of the lookup embedded in
	// the same process, if any. The broker always registers with it, and
	// a --lookupd-tcp-address naming the same listener is not used twice.
	LocalLookupTCPAddress string `json:"-"`

	// Logger receives the broker's logs; nil means slog.Default().
	Logger *slog.Logger `json:"-"`
	// LevelVar, when set, is the level of Logger's handler, so that
	// PUT /config/log_level can change it at run time.
	LevelVar *slog.LevelVar `json:"-"`
}

// NewOptions returns nsqd v1.3.0's defaults.
func NewOptions() *Options {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "localhost"
	}
	h := md5.New()
	_, _ = io.WriteString(h, hostname)
	nodeID := int64(crc32.ChecksumIEEE(h.Sum(nil)) % 1024)
	dataPath, err := os.Getwd()
	if err != nil {
		dataPath = "."
	}
	return &Options{
		NodeID:    nodeID,
		LogLevel:  "info",
		LogPrefix: "[nsqd] ",

		TCPAddress:       "0.0.0.0:4150",
		HTTPAddress:      "0.0.0.0:4151",
		HTTPSAddress:     "0.0.0.0:4152",
		BroadcastAddress: hostname,

		AuthHTTPRequestMethod:    "get",
		HTTPClientConnectTimeout: 2 * time.Second,
		HTTPClientRequestTimeout: 5 * time.Second,

		DataPath:        dataPath,
		MemQueueSize:    10000,
		MaxBytesPerFile: 100 * 1024 * 1024,
		SyncEvery:       2500,
		SyncTimeout:     2 * time.Second,

		QueueScanWorkerPoolMax:  4,
		QueueScanSelectionCount: 20,

		MsgTimeout:    60 * time.Second,
		MaxMsgTimeout: 15 * time.Minute,
		MaxMsgSize:    1024 * 1024,
		MaxReqTimeout: time.Hour,
		MaxBodySize:   5 * 1024 * 1024,

		MaxHeartbeatInterval:   60 * time.Second,
		MaxRdyCount:            2500,
		MaxOutputBufferSize:    64 * 1024,
		MaxOutputBufferTimeout: 30 * time.Second,
		MinOutputBufferTimeout: 25 * time.Millisecond,
		OutputBufferTimeout:    250 * time.Millisecond,
		ClientTimeout:          60 * time.Second,

		StatsdPrefix:        "nsq.%s",
		StatsdInterval:      60 * time.Second,
		StatsdMemStats:      true,
		StatsdUDPPacketSize: 508,

		E2EProcessingLatencyWindowTime: 10 * time.Minute,

		TLSMinVersion: tls.VersionTLS10,

		DeflateEnabled:  true,
		MaxDeflateLevel: 6,
		SnappyEnabled:   true,
	}
}

// Validate reports the first invalid option. It changes nothing.
func (o *Options) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(o.NodeID >= 0 && o.NodeID < 1024, "--node-id must be in [0,1024), got %d", o.NodeID)
	_, levelErr := ParseLogLevel(o.LogLevel)
	check(levelErr == nil, "--log-level: %v", levelErr)
	check(o.TCPAddress != "", "--tcp-address must not be empty")
	check(o.AuthHTTPRequestMethod == "get" || o.AuthHTTPRequestMethod == "post", "--auth-http-request-method must be get or post, got %q", o.AuthHTTPRequestMethod)
	check(o.MemQueueSize >= 0, "--mem-queue-size must be >= 0, got %d", o.MemQueueSize)
	check(o.MaxBytesPerFile > 0, "--max-bytes-per-file must be > 0, got %d", o.MaxBytesPerFile)
	check(o.SyncEvery > 0, "--sync-every must be > 0, got %d", o.SyncEvery)
	check(o.SyncTimeout > 0, "--sync-timeout must be > 0, got %s", o.SyncTimeout)
	check(o.MsgTimeout >= time.Millisecond, "--msg-timeout must be at least 1ms, got %s", o.MsgTimeout)
	check(o.MaxMsgTimeout >= o.MsgTimeout, "--max-msg-timeout (%s) must be >= --msg-timeout (%s)", o.MaxMsgTimeout, o.MsgTimeout)
	check(o.MaxMsgSize > 0, "--max-msg-size must be > 0, got %d", o.MaxMsgSize)
	check(o.MaxBodySize >= o.MaxMsgSize, "--max-body-size (%d) must be >= --max-msg-size (%d)", o.MaxBodySize, o.MaxMsgSize)
	check(o.MaxBodySize <= 1<<31-1, "--max-body-size must fit in 32 bits, got %d", o.MaxBodySize)
	check(o.MaxReqTimeout >= 0, "--max-req-timeout must be >= 0, got %s", o.MaxReqTimeout)
	check(o.MaxHeartbeatInterval >= time.Second, "--max-heartbeat-interval must be at least 1s, got %s", o.MaxHeartbeatInterval)
	check(o.MaxRdyCount > 0, "--max-rdy-count must be > 0, got %d", o.MaxRdyCount)
	check(o.MaxOutputBufferSize >= 64, "--max-output-buffer-size must be >= 64, got %d", o.MaxOutputBufferSize)
	check(o.MinOutputBufferTimeout <= o.MaxOutputBufferTimeout, "--min-output-buffer-timeout (%s) must be <= --max-output-buffer-timeout (%s)", o.MinOutputBufferTimeout, o.MaxOutputBufferTimeout)
	check(o.OutputBufferTimeout >= 0, "--output-buffer-timeout must be >= 0, got %s", o.OutputBufferTimeout)
	check(o.MaxChannelConsumers >= 0, "--max-channel-consumers must be >= 0, got %d", o.MaxChannelConsumers)
	check(o.MaxDeflateLevel >= 1 && o.MaxDeflateLevel <= 9, "--max-deflate-level must be in [1,9], got %d", o.MaxDeflateLevel)
	check(o.BroadcastTCPPort >= 0 && o.BroadcastTCPPort < 65536, "--broadcast-tcp-port out of range: %d", o.BroadcastTCPPort)
	check(o.BroadcastHTTPPort >= 0 && o.BroadcastHTTPPort < 65536, "--broadcast-http-port out of range: %d", o.BroadcastHTTPPort)
	check(o.StatsdAddress == "" || o.StatsdInterval > 0, "--statsd-interval must be > 0, got %s", o.StatsdInterval)
	for _, p := range o.E2EProcessingLatencyPercentiles {
		check(p > 0 && p <= 1, "--e2e-processing-latency-percentile %v must be in (0,1]", p)
	}
	check(!o.Durable || o.MemQueueSize == 0 || o.MemQueueSize == 10000,
		"--mem-queue-size=%d has no effect with --durable, which keeps no memory queue; remove one of them", o.MemQueueSize)
	// nsqd's queue scan has no counterpart to tune: a value other than
	// nsqd's default is refused rather than accepted and ignored.
	check(o.QueueScanWorkerPoolMax == 4, "--queue-scan-worker-pool-max=%d: wren has no queue scan workers (messages time out per client, on time); remove the flag", o.QueueScanWorkerPoolMax)
	check(o.QueueScanSelectionCount == 20, "--queue-scan-selection-count=%d: wren has no queue scan to tune; remove the flag", o.QueueScanSelectionCount)
	switch o.TLSClientAuthPolicy {
	case "", "require", "require-verify":
	default:
		errs = append(errs, fmt.Errorf("--tls-client-auth-policy must be 'require' or 'require-verify', got %q", o.TLSClientAuthPolicy))
	}
	check((o.TLSCert == "") == (o.TLSKey == ""), "--tls-cert and --tls-key must be given together")
	check(o.TLSRequired == TLSNotRequired || o.TLSCert != "", "--tls-required needs --tls-cert and --tls-key")
	check(o.TLSClientAuthPolicy == "" || o.TLSCert != "", "--tls-client-auth-policy needs --tls-cert and --tls-key")
	errs = append(errs, validateExperiments(o.Experiments))
	return errors.Join(errs...)
}

// ParseLogLevel maps nsqd's level names to slog levels.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid log level %q (want debug, info, warn, error or fatal)", s)
}

// TLSRequired says where TLS is required: nowhere, on TCP only (HTTP may
// stay plain), or everywhere. It reads "false", "tcp-https" or "true".
type TLSRequired int

const (
	TLSNotRequired        TLSRequired = 0
	TLSRequiredExceptHTTP TLSRequired = 1
	TLSRequiredEverywhere TLSRequired = 2
)

func (t *TLSRequired) String() string {
	switch *t {
	case TLSRequiredExceptHTTP:
		return "tcp-https"
	case TLSRequiredEverywhere:
		return "true"
	}
	return "false"
}

// Set parses a --tls-required value.
func (t *TLSRequired) Set(s string) error {
	switch s {
	case "tcp-https":
		*t = TLSRequiredExceptHTTP
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true, false or tcp-https, got %q", s)
	}
	if b {
		*t = TLSRequiredEverywhere
	} else {
		*t = TLSNotRequired
	}
	return nil
}

// IsBoolFlag lets a bare --tls-required mean true, as in nsqd.
func (t *TLSRequired) IsBoolFlag() bool { return true }

// versionSSL30 is accepted as a --tls-min-version, as nsqd accepts it. Go's
// TLS no longer speaks SSLv3, so in effect it means TLS 1.0.
const versionSSL30 = 0x0300

// TLSVersion is a minimum TLS version, read as "tls1.0" … "tls1.3".
type TLSVersion uint16

func (v *TLSVersion) String() string {
	switch uint16(*v) {
	case versionSSL30:
		return "ssl3.0"
	case tls.VersionTLS10:
		return "tls1.0"
	case tls.VersionTLS11:
		return "tls1.1"
	case tls.VersionTLS12:
		return "tls1.2"
	case tls.VersionTLS13:
		return "tls1.3"
	}
	return ""
}

// Set parses a --tls-min-version value.
func (v *TLSVersion) Set(s string) error {
	switch strings.ToLower(s) {
	case "":
		*v = 0
	case "ssl3.0":
		*v = versionSSL30
	case "tls1.0":
		*v = tls.VersionTLS10
	case "tls1.1":
		*v = tls.VersionTLS11
	case "tls1.2":
		*v = tls.VersionTLS12
	case "tls1.3":
		*v = tls.VersionTLS13
	default:
		return fmt.Errorf("want ssl3.0, tls1.0, tls1.1, tls1.2 or tls1.3, got %q", s)
	}
	return nil
}
