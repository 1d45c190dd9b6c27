// Command wren runs a broker that is a drop-in for NSQ's nsqd.
//
//	wren [broker] [flags]   run the broker
//	wren nsqd [flags]       the same, under nsqd's name
//	wren version            print the version
//	wren help               print the usage
//
// This package holds flags, the config file, logging setup and signals only;
// everything else lives in the broker package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"wren/broker"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// shutdownTimeout bounds how long a signalled broker may take to persist its
// queues before the process gives up and exits non-zero.
const shutdownTimeout = 30 * time.Second

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit status: 0 on
// success, 1 when the broker fails at run time, 2 for a bad command line or
// configuration.
func run(args []string, stdout, stderr io.Writer) int {
	command, rest := "broker", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		command, rest = args[0], args[1:]
	}
	switch command {
	case "broker", "nsqd":
		return runBroker(rest, stdout, stderr)
	case "version":
		printVersion(stdout)
		return 0
	case "help":
		printUsage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "wren: unknown command %q (want broker, nsqd, version or help)\n", command)
	return 2
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "wren %s (nsq 1.3.0 compatible)\n", version)
}

// runBroker parses the broker's flags and runs it until SIGINT or SIGTERM.
func runBroker(args []string, stdout, stderr io.Writer) int {
	opts, err := parseBrokerArgs(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return 0
	case errors.Is(err, errVersionRequested):
		printVersion(stdout)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "wren: %s\n", oneLine(err))
		return 2
	}
	setUpLogging(opts, stderr)

	b, err := broker.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "wren: %s\n", oneLine(err))
		return 1
	}
	// Catch signals before Start so that one arriving while the listeners
	// open still leads to an orderly shutdown.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	opts.Logger.Info("wren starting", "version", version, "node_id", opts.NodeID, "data_path", opts.DataPath)
	if err := b.Start(); err != nil {
		fmt.Fprintf(stderr, "wren: %s\n", oneLine(err))
		return 1
	}
	sig := <-signals
	// A second signal now kills the process the default way, for an
	// operator who does not want to wait for the queues to be persisted.
	signal.Stop(signals)
	opts.Logger.Info("shutting down", "signal", sig.String(), "timeout", shutdownTimeout)

	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := b.Shutdown(ctx); err != nil {
		opts.Logger.Error("shutdown failed", "err", err)
		return 1
	}
	return 0
}

// errVersionRequested reports that --version was given.
var errVersionRequested = errors.New("version requested")

// parseBrokerArgs turns the broker's command line, and the config file it
// names, into validated options. Precedence: command-line flag, then config
// file, then broker.NewOptions. It returns flag.ErrHelp for -h and
// errVersionRequested for --version.
func parseBrokerArgs(args []string) (*broker.Options, error) {
	opts := broker.NewOptions()
	flags, err := newBrokerFlags(opts)
	if err != nil {
		return nil, err
	}
	if err := flags.parse(args); err != nil {
		return nil, err
	}
	if flags.version {
		return nil, errVersionRequested
	}
	if flags.set.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", flags.set.Arg(0))
	}
	if flags.configPath != "" {
		values, err := readConfigFile(flags.configPath)
		if err != nil {
			return nil, fmt.Errorf("config file %s: %w", flags.configPath, err)
		}
		fromCommandLine := make(map[string]bool)
		flags.set.Visit(func(f *flag.Flag) { fromCommandLine[f.Name] = true })
		if err := applyConfig(flags.options, values, fromCommandLine); err != nil {
			return nil, fmt.Errorf("config file %s: %w", flags.configPath, err)
		}
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return opts, nil
}

// oneLine joins a multi-line error, such as one from errors.Join, so that a
// failure is always reported on a single line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// setUpLogging gives opts a text logger on w whose level --log-level sets and
// PUT /config/log_level can change later through opts.LevelVar.
func setUpLogging(opts *broker.Options, w io.Writer) {
	level, err := broker.ParseLogLevel(opts.LogLevel)
	if err != nil {
		level = slog.LevelInfo // unreachable: Validate checked the level
	}
	opts.LevelVar = new(slog.LevelVar)
	opts.LevelVar.Set(level)
	if opts.LogPrefix != "" {
		w = &prefixWriter{prefix: []byte(opts.LogPrefix), w: w, lineStart: true}
	}
	opts.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: opts.LevelVar}))
}
