package main

import (
	"io"
	"net"

	"wren/lookup"
)

// runLookup parses the lookup's flags and runs it alone, as nsqlookupd,
// until SIGINT or SIGTERM.
func runLookup(args []string, stdout, stderr io.Writer) int {
	opts, err := parseLookupArgs(args)
	if code, ok := reportParseError(err, stdout, stderr); !ok {
		return code
	}
	opts.LevelVar = newLevelVar(opts.LogLevel)
	opts.Logger = newLogger(stderr, opts.LogPrefix, opts.LevelVar)
	return serve(opts.Logger, stderr, []any{"version", version, "mode", "lookup"}, func() (server, error) {
		return startLookup(opts)
	})
}

// newLookupFlags binds a flag set to the fields of opts, with nsqlookupd's
// flag names; the current values become the defaults.
func newLookupFlags(opts *lookup.Options) (*commandFlags, error) {
	options, err := bindOptions(opts)
	if err != nil {
		return nil, err
	}
	return newCommandFlags("wren lookup", "path to a TOML config file with nsqlookupd's keys (flags override it)", options), nil
}

// parseLookupArgs turns the lookup's command line, and the config file it
// names, into validated options. Precedence: command-line flag, then config
// file, then lookup.NewOptions. It returns flag.ErrHelp for -h and
// errVersionRequested for --version.
func parseLookupArgs(args []string) (*lookup.Options, error) {
	return parseOptions(lookup.NewOptions(), newLookupFlags, args)
}

// startLookup creates and starts a lookup, which logs "lookup listening"
// with its addresses. On error nothing is left open.
func startLookup(opts *lookup.Options) (*lookup.Lookup, error) {
	return started(lookup.New(opts))
}

// dialAddress turns a listener's address into one this process can dial:
// a wildcard host (0.0.0.0 or [::]) becomes 127.0.0.1, keeping the real
// port.
func dialAddress(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
