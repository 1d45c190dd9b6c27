package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"wren/internal/bench"
)

// runBench runs "wren bench MODE [flags]": a load generator against any
// NSQ V2 broker, or the sink, a stand-in broker that stores nothing. It
// returns 0 on success, 1 when the run fails and 2 for a bad command line.
func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "wren: bench needs a mode: publish, consume, latency or sink (see wren bench help)")
		return 2
	}
	mode, rest := args[0], args[1:]
	switch mode {
	case "publish":
		return runBenchMode(mode, bench.NewPublishOptions(), bench.Publish, rest, stdout, stderr)
	case "consume":
		return runBenchMode(mode, bench.NewConsumeOptions(), bench.Consume, rest, stdout, stderr)
	case "latency":
		return runBenchMode(mode, bench.NewLatencyOptions(), bench.Latency, rest, stdout, stderr)
	case "sink":
		return runSink(rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		printBenchUsage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "wren: unknown bench mode %q (want publish, consume, latency or sink)\n", mode)
	return 2
}

// benchOptions are the options of a load-generating mode.
type benchOptions interface {
	Validate() error
	WantJSON() bool
}

// runBenchMode parses a mode's flags, runs it until it ends or SIGINT or
// SIGTERM cut it short, and prints the summary on stdout.
func runBenchMode[O benchOptions](mode string, opts O, run func(context.Context, O, io.Writer) (*bench.Result, error), args []string, stdout, stderr io.Writer) int {
	opts, err := parseOptions(opts, newBenchFlags[O]("wren bench "+mode), args)
	if code, ok := reportBenchParseError(err, stdout, stderr); !ok {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	result, err := run(ctx, opts, bench.ProgressWriter(stderrFile(stderr)))
	if err != nil {
		fmt.Fprintf(stderr, "wren: bench %s: %s\n", mode, oneLine(err))
		return 1
	}
	if opts.WantJSON() {
		err = result.WriteJSON(stdout)
	} else {
		err = result.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "wren: bench %s: %s\n", mode, oneLine(err))
		return 1
	}
	return 0
}

// runSink runs the sink until SIGINT or SIGTERM.
func runSink(args []string, stdout, stderr io.Writer) int {
	opts, err := parseOptions(bench.NewSinkOptions(), newBenchFlags[*bench.SinkOptions]("wren bench sink"), args)
	if code, ok := reportBenchParseError(err, stdout, stderr); !ok {
		return code
	}
	opts.Logger = newLogger(stderr, "[sink] ", newLevelVar("info"))
	return serve(opts.Logger, stderr, []any{"version", version, "mode", "bench sink"}, func() (server, error) {
		return started(bench.NewSink(opts))
	})
}

// reportBenchParseError is reportParseError with the bench modes' own
// usage for -h.
func reportBenchParseError(err error, stdout, stderr io.Writer) (code int, ok bool) {
	if errors.Is(err, flag.ErrHelp) {
		printBenchUsage(stdout)
		return 0, false
	}
	return reportParseError(err, stdout, stderr)
}

// newBenchFlags binds a flag set named name to the tagged fields of a bench
// mode's options.
func newBenchFlags[O any](name string) func(O) (*commandFlags, error) {
	return func(opts O) (*commandFlags, error) {
		options, err := bindOptions(opts)
		if err != nil {
			return nil, err
		}
		return newCommandFlags(name, "path to a TOML file setting these flags by name, with _ for - (flags override it)", options), nil
	}
}

// stderrFile returns stderr as a file when it is one, so that progress is
// shown only on a terminal; the writers tests pass are never terminals.
func stderrFile(stderr io.Writer) *os.File {
	f, _ := stderr.(*os.File)
	return f
}

func printBenchUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  wren bench publish --topic T [flags]               publish as fast as the broker answers, or at --rate
  wren bench consume --topic T --channel C [flags]   subscribe and FIN every message
  wren bench latency --topic T --channel C [flags]   publish at --rate and time each message end to end
  wren bench sink [flags]                            a stand-in broker that answers OK and stores nothing

publish, consume and latency work against any NSQ V2 broker (wren or nsqd).
Each stops at --duration, or after --count messages if that comes first,
and prints one summary line (--json: one JSON object) on stdout. On a
terminal, stderr shows the rate every second. Every mode also takes
--version and --config FILE (TOML; keys are the flag names with _ for -).
`)
	for _, mode := range []struct {
		name  string
		flags func() (*commandFlags, error)
	}{
		{"publish", func() (*commandFlags, error) {
			return newBenchFlags[*bench.PublishOptions]("")(bench.NewPublishOptions())
		}},
		{"consume", func() (*commandFlags, error) {
			return newBenchFlags[*bench.ConsumeOptions]("")(bench.NewConsumeOptions())
		}},
		{"latency", func() (*commandFlags, error) {
			return newBenchFlags[*bench.LatencyOptions]("")(bench.NewLatencyOptions())
		}},
		{"sink", func() (*commandFlags, error) {
			return newBenchFlags[*bench.SinkOptions]("")(bench.NewSinkOptions())
		}},
	} {
		fmt.Fprintf(w, "\n%s flags:\n", mode.name)
		flags, err := mode.flags()
		if err != nil {
			fmt.Fprintf(w, "  (cannot list flags: %v)\n", err)
			continue
		}
		printOptionFlags(w, flags, flags.options)
	}
}
