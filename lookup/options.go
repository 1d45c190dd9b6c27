package lookup

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Options configure a lookup registry. NewOptions returns nsqlookupd
// v1.3.0's defaults. The `flag` tag is the nsqlookupd flag name; its
// config-file key is the flag name with "-" turned to "_". Fields without a
// flag tag are set only from code.
type Options struct {
	LogLevel  string `flag:"log-level" help:"set log verbosity: debug, info, warn, error, or fatal"`
	LogPrefix string `flag:"log-prefix" help:"log message prefix"`

	TCPAddress       string `flag:"tcp-address" help:"<addr>:<port> to listen on for TCP clients (empty disables)"`
	HTTPAddress      string `flag:"http-address" help:"<addr>:<port> to listen on for HTTP clients (empty disables)"`
	BroadcastAddress string `flag:"broadcast-address" help:"address of this lookupd node, (default to the OS hostname)"`

	InactiveProducerTimeout time.Duration `flag:"inactive-producer-timeout" help:"duration of time a producer will remain in the active list since its last ping"`
	TombstoneLifetime       time.Duration `flag:"tombstone-lifetime" help:"duration of time a producer will remain tombstoned if registration remains"`

	// Logger receives the registry's logs; nil means slog.Default().
	Logger *slog.Logger `json:"-"`
	// LevelVar, when set, is the level of Logger's handler. The registry
	// only keeps it, for whoever changes the level at run time.
	LevelVar *slog.LevelVar `json:"-"`
}

// NewOptions returns nsqlookupd v1.3.0's defaults.
func NewOptions() *Options {
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "localhost"
	}
	return &Options{
		LogLevel:  "info",
		LogPrefix: "[nsqlookupd] ",

		TCPAddress:       "0.0.0.0:4160",
		HTTPAddress:      "0.0.0.0:4161",
		BroadcastAddress: hostname,

		InactiveProducerTimeout: 5 * time.Minute,
		TombstoneLifetime:       45 * time.Second,
	}
}

// Validate reports every invalid option. It changes nothing and opens
// nothing.
func (o *Options) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(validLogLevel(o.LogLevel), "--log-level: invalid log level %q (want debug, info, warn, error or fatal)", o.LogLevel)
	if err := checkTCPAddress(o.TCPAddress); err != nil {
		errs = append(errs, fmt.Errorf("--tcp-address: %w", err))
	}
	if err := checkTCPAddress(o.HTTPAddress); err != nil {
		errs = append(errs, fmt.Errorf("--http-address: %w", err))
	}
	check(o.InactiveProducerTimeout > 0, "--inactive-producer-timeout must be > 0, got %s", o.InactiveProducerTimeout)
	check(o.TombstoneLifetime >= 0, "--tombstone-lifetime must be >= 0, got %s", o.TombstoneLifetime)
	return errors.Join(errs...)
}

// checkTCPAddress accepts "" (disabled) or host:port with a numeric port.
// Peers are told apart by their remote address, so unix sockets, where
// every peer has the same one, are not offered.
func checkTCPAddress(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

func validLogLevel(s string) bool {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "warning", "error", "fatal":
		return true
	}
	return false
}
