package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"wren/broker"
)

// commandFlags is one mode's command line: one flag per bound option, plus
// --config and --version.
type commandFlags struct {
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
	flags *commandFlags
}

func (r *recordingValue) Set(s string) error {
	err := r.optionValue.Set(s)
	if err != nil {
		r.flags.failed = &flagValueError{name: r.name, value: s, err: err}
	}
	return err
}

// newCommandFlags binds a flag set named name to options, whose current
// values become the defaults. configUsage is the help of --config.
func newCommandFlags(name, configUsage string, options []option) *commandFlags {
	f := &commandFlags{
		set:     flag.NewFlagSet(name, flag.ContinueOnError),
		options: options,
	}
	// The flag package would print the whole usage on every error; we
	// report one line ourselves instead.
	f.set.SetOutput(io.Discard)
	f.set.Usage = func() {}
	f.set.StringVar(&f.configPath, "config", "", configUsage)
	f.set.BoolVar(&f.version, "version", false, "print the version and exit")
	for _, opt := range options {
		if opt.flagName == "" {
			continue
		}
		value := &recordingValue{optionValue: &optionValue{field: opt.value}, name: opt.flagName, flags: f}
		f.set.Var(value, opt.flagName, opt.usage)
	}
	return f
}

// newBrokerFlags binds a flag set to the fields of opts, whose current
// values become the defaults.
func newBrokerFlags(opts *broker.Options) (*commandFlags, error) {
	options, err := bindOptions(opts)
	if err != nil {
		return nil, err
	}
	return newCommandFlags("wren broker", "path to a TOML config file with nsqd's keys (flags override it)", options), nil
}

// load parses args, then the config file they name, into the bound
// options. Precedence: command-line flag, then config file, then the
// options' values before load. It returns flag.ErrHelp for -h and
// errVersionRequested for --version, and does not validate.
func (f *commandFlags) load(args []string) error {
	if err := f.parse(args); err != nil {
		return err
	}
	if f.version {
		return errVersionRequested
	}
	if f.set.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", f.set.Arg(0))
	}
	if f.configPath == "" {
		return nil
	}
	values, err := readConfigFile(f.configPath)
	if err != nil {
		return fmt.Errorf("config file %s: %w", f.configPath, err)
	}
	fromCommandLine := make(map[string]bool)
	f.set.Visit(func(fl *flag.Flag) { fromCommandLine[fl.Name] = true })
	if err := applyConfig(f.options, values, fromCommandLine); err != nil {
		return fmt.Errorf("config file %s: %w", f.configPath, err)
	}
	return nil
}

// parse parses args, rewording the flag package's errors into the --flag
// form; flag.ErrHelp is returned as is.
func (f *commandFlags) parse(args []string) error {
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

// printFlags writes --config, --version and then the flags of options, in
// the order their Options struct declares them.
func printFlags(w io.Writer, flags *commandFlags, options []option) {
	printFlag(w, flags.set.Lookup("config"), "string")
	printFlag(w, flags.set.Lookup("version"), "")
	printOptionFlags(w, flags, options)
}

func printOptionFlags(w io.Writer, flags *commandFlags, options []option) {
	for _, opt := range options {
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
