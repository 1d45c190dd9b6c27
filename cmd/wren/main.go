// Command wren runs a message broker that is a drop-in for NSQ's nsqd and,
// in the same binary, a discovery registry that is a drop-in for
// nsqlookupd.
//
//	wren [flags]                run the broker and an embedded lookup
//	wren broker [flags]         run the broker only
//	wren nsqd [flags]           the same, under nsqd's name
//	wren lookup [flags]         run the lookup only
//	wren nsqlookupd [flags]     the same, under nsqlookupd's name
//	wren bench MODE [flags]     load-test any NSQ broker (publish, consume,
//	                            latency) or run a sink that stores nothing
//	wren version                print the version
//	wren help                   print the usage
//
// This package holds flags, the config file, logging setup and signals only;
// everything else lives in the broker and lookup packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"wren/broker"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// shutdownTimeout bounds how long a signalled process may take to persist
// its queues before it gives up and exits non-zero.
const shutdownTimeout = 30 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status: 0 on
// success, 1 when a server fails at run time, 2 for a bad command line or
// configuration.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return runCombined(args, stdout, stderr)
	}
	command, rest := args[0], args[1:]
	switch command {
	case "broker", "nsqd":
		return runBroker(rest, stdout, stderr)
	case "lookup", "nsqlookupd":
		return runLookup(rest, stdout, stderr)
	case "bench":
		return runBench(rest, stdout, stderr)
	case "version":
		printVersion(stdout)
		return 0
	case "help":
		printUsage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "wren: unknown command %q (want broker, nsqd, lookup, nsqlookupd, bench, version or help)\n", command)
	return 2
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "wren %s (nsq 1.3.0 compatible)\n", version)
}

// errVersionRequested reports that --version was given.
var errVersionRequested = errors.New("version requested")

// reportParseError handles the outcome of parsing a mode's command line:
// for -h or --version it prints the usage or the version and returns 0; for
// any other error it prints one line and returns 2. ok is true only when
// err is nil and the mode should run.
func reportParseError(err error, stdout, stderr io.Writer) (code int, ok bool) {
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return 0, false
	case errors.Is(err, errVersionRequested):
		printVersion(stdout)
		return 0, false
	}
	fmt.Fprintf(stderr, "wren: %s\n", oneLine(err))
	return 2, false
}

// runBroker parses the broker's flags and runs it until SIGINT or SIGTERM.
func runBroker(args []string, stdout, stderr io.Writer) int {
	opts, err := parseBrokerArgs(args)
	if code, ok := reportParseError(err, stdout, stderr); !ok {
		return code
	}
	setUpLogging(opts, stderr)
	startAttrs := []any{"version", version, "node_id", opts.NodeID, "data_path", opts.DataPath}
	return serve(opts.Logger, stderr, startAttrs, func() (server, error) {
		return startBroker(opts)
	})
}

// parseBrokerArgs turns the broker's command line, and the config file it
// names, into validated options. Precedence: command-line flag, then config
// file, then broker.NewOptions. It returns flag.ErrHelp for -h and
// errVersionRequested for --version.
func parseBrokerArgs(args []string) (*broker.Options, error) {
	return parseOptions(broker.NewOptions(), newBrokerFlags, args)
}

// parseOptions fills opts from the command line and the config file it
// names through the flags newFlags binds, then validates them.
func parseOptions[O interface{ Validate() error }](opts O, newFlags func(O) (*commandFlags, error), args []string) (O, error) {
	var zero O
	flags, err := newFlags(opts)
	if err != nil {
		return zero, err
	}
	if err := flags.load(args); err != nil {
		return zero, err
	}
	if err := opts.Validate(); err != nil {
		return zero, err
	}
	return opts, nil
}

// startBroker creates and starts a broker; on error nothing is left open.
func startBroker(opts *broker.Options) (*broker.Broker, error) {
	return started(broker.New(opts))
}

// started starts what a constructor made, passing its error through.
func started[S interface{ Start() error }](s S, err error) (S, error) {
	var zero S
	if err != nil {
		return zero, err
	}
	if err := s.Start(); err != nil {
		return zero, err
	}
	return s, nil
}

// oneLine joins a multi-line error, such as one from errors.Join, so that a
// failure is always reported on a single line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
