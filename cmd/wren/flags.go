package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"wren/broker"
)

// brokerFlags is the broker's command line: one flag per tagged field of
// broker.Options, plus --config and --version.
type brokerFlags struct {
	set        *flag.FlagSet
	options    []option
	configPath string
	version    bool
	// failed records the last value a flag refused, so that the error can
	// name the flag in the --flag form users type.
	failed *flagValueError
}

type flagValueError struct {
	name, value string
	err         error
}

func (e *flagValueError) Error() string {
	return fmt.Sprintf("invalid value %q for flag --%s: %v", e.value, e.name, e.err)
}

func (e *flagValueError) Unwrap() error { return e.err }

// recordingValue is an option's flag.Value that remembers a refused value.
type recordingValue struct {
	*optionValue
	name  string
	flags *brokerFlags
}

func (r *recordingValue) Set(s string) error {
	err := r.optionValue.Set(s)
	if err != nil {
		r.flags.failed = &flagValueError{name: r.name, value: s, err: err}
	}
	return err
}

// newBrokerFlags binds a flag set to the fields of opts, whose current
// values become the defaults.
func newBrokerFlags(opts *broker.Options) (*brokerFlags, error) {
	options, err := bindOptions(opts)
	if err != nil {
		return nil, err
	}
	f := &brokerFlags{
		set:     flag.NewFlagSet("wren broker", flag.ContinueOnError),
		options: options,
	}
	// The flag package would print the whole usage on every error; we
	// report one line ourselves instead.
	f.set.SetOutput(io.Discard)
	f.set.Usage = func() {}
	f.set.StringVar(&f.configPath, "config", "", "path to a TOML config file with nsqd's keys (flags override it)")
	f.set.BoolVar(&f.version, "version", false, "print the version and exit")
	for _, opt := range options {
		if opt.flagName == "" {
			continue
		}
		value := &recordingValue{optionValue: &optionValue{field: opt.value}, name: opt.flagName, flags: f}
		f.set.Var(value, opt.flagName, opt.usage)
	}
	return f, nil
}

// parse parses args, rewording the flag package's errors into the --flag
// form; flag.ErrHelp is returned as is.
func (f *brokerFlags) parse(args []string) error {
	err := f.set.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	if f.failed != nil {
		return f.failed
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown flag --%s (see wren help)", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("flag --%s needs a value", name)
	}
	return err
}

// printUsage writes the help text, with the broker's flags in the order
// broker.Options declares them.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  wren [broker] [flags]   run the broker, a drop-in for nsqd
  wren nsqd [flags]       the same as wren broker
  wren version            print the version
  wren help               print this help

Flags may be written -name or --name; lists may be repeated or comma-separated.

Broker flags:
`)
	flags, err := newBrokerFlags(broker.NewOptions())
	if err != nil {
		fmt.Fprintf(w, "  (cannot list flags: %v)\n", err)
		return
	}
	printFlag(w, flags.set.Lookup("config"), "string")
	printFlag(w, flags.set.Lookup("version"), "")
	for _, opt := range flags.options {
		if opt.flagName == "" {
			continue
		}
		f := flags.set.Lookup(opt.flagName)
		printFlag(w, f, f.Value.(*recordingValue).typeName())
	}
}

func printFlag(w io.Writer, f *flag.Flag, typeName string) {
	line := "  --" + f.Name
	switch {
	case strings.HasPrefix(typeName, "["):
		line += typeName
	case typeName != "":
		line += " " + typeName
	}
	fmt.Fprintln(w, line)
	usage := "    \t" + f.Usage
	switch f.DefValue {
	case "", "0", "0s", "false":
	default:
		if typeName == "string" {
			usage += fmt.Sprintf(" (default %q)", f.DefValue)
		} else {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
	}
	fmt.Fprintln(w, usage)
}
