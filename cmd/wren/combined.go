package main

import (
	"errors"
	"io"
	"strings"

	"wren/broker"
	"wren/lookup"
)

// The combined mode, wren with no command, runs the broker and a lookup in
// one process. The lookup's own listeners and timeouts are flags with this
// prefix; its broadcast address and log level are the broker's, and its log
// prefix stays nsqlookupd's.
const combinedLookupPrefix = "lookup-"

// combinedLookupFlags are the lookup.Options flag names bound, prefixed,
// into the combined command line.
var combinedLookupFlags = []string{"tcp-address", "http-address", "inactive-producer-timeout", "tombstone-lifetime"}

// combinedFlags is the combined command line: every broker flag, then the
// prefixed lookup flags. lookupOptions is the tail of flags.options that
// belongs to the lookup.
type combinedFlags struct {
	flags         *commandFlags
	lookupOptions []option
}

func newCombinedFlags(brokerOpts *broker.Options, lookupOpts *lookup.Options) (*combinedFlags, error) {
	brokerOptions, err := bindOptions(brokerOpts)
	if err != nil {
		return nil, err
	}
	lookupOptions, err := bindSomeOptions(lookupOpts, combinedLookupPrefix, combinedLookupFlags)
	if err != nil {
		return nil, err
	}
	options := append(brokerOptions, lookupOptions...)
	flags := newCommandFlags("wren", "path to a TOML config file with nsqd's keys and the lookup_* keys (flags override it)", options)
	return &combinedFlags{flags: flags, lookupOptions: lookupOptions}, nil
}

// parseCombinedArgs turns the combined command line, and the config file it
// names, into validated options for the broker and for its lookup; the
// lookup's are nil when both its addresses are empty. Precedence: flag,
// then config file, then NewOptions. It returns flag.ErrHelp for -h and
// errVersionRequested for --version.
func parseCombinedArgs(args []string) (*broker.Options, *lookup.Options, error) {
	brokerOpts, lookupOpts := broker.NewOptions(), lookup.NewOptions()
	combined, err := newCombinedFlags(brokerOpts, lookupOpts)
	if err != nil {
		return nil, nil, err
	}
	if err := combined.flags.load(args); err != nil {
		return nil, nil, err
	}
	brokerErr := brokerOpts.Validate()
	if lookupOpts.TCPAddress == "" && lookupOpts.HTTPAddress == "" {
		if brokerErr != nil {
			return nil, nil, brokerErr
		}
		return brokerOpts, nil, nil
	}
	lookupOpts.BroadcastAddress = brokerOpts.BroadcastAddress
	lookupOpts.LogLevel = brokerOpts.LogLevel
	if err := errors.Join(brokerErr, withLookupFlagNames(lookupOpts.Validate())); err != nil {
		return nil, nil, err
	}
	return brokerOpts, lookupOpts, nil
}

// withLookupFlagNames rewords an error of the embedded lookup, which names
// its flags as nsqlookupd does (--tcp-address), with the names they have in
// the combined mode (--lookup-tcp-address); otherwise the message would
// point at the broker's flag of the same name.
func withLookupFlagNames(err error) error {
	if err == nil {
		return nil
	}
	pairs := make([]string, 0, 2*len(combinedLookupFlags))
	for _, name := range combinedLookupFlags {
		pairs = append(pairs, "--"+name, "--"+combinedLookupPrefix+name)
	}
	return &renamedError{msg: strings.NewReplacer(pairs...).Replace(err.Error()), err: err}
}

// renamedError is err with a reworded message.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// runCombined runs the broker and, unless both its addresses are empty, an
// embedded lookup, until SIGINT or SIGTERM. The lookup starts first, so
// that the broker knows its real port and registers with it; at shutdown
// the broker goes first and unregisters.
func runCombined(args []string, stdout, stderr io.Writer) int {
	brokerOpts, lookupOpts, err := parseCombinedArgs(args)
	if code, ok := reportParseError(err, stdout, stderr); !ok {
		return code
	}
	setUpLogging(brokerOpts, stderr)
	startAttrs := []any{"version", version, "node_id", brokerOpts.NodeID, "data_path", brokerOpts.DataPath, "lookup", lookupOpts != nil}
	var starts []startFunc
	if lookupOpts != nil {
		// One process, one level: PUT /config/log_level on the broker
		// changes the lookup's too.
		lookupOpts.LevelVar = brokerOpts.LevelVar
		lookupOpts.Logger = newLogger(stderr, lookupOpts.LogPrefix, lookupOpts.LevelVar)
		starts = append(starts, func() (server, error) {
			l, err := startLookup(lookupOpts)
			if err != nil {
				return nil, withLookupFlagNames(err)
			}
			if addr := l.TCPAddr(); lookupOpts.TCPAddress != "" && addr != nil {
				brokerOpts.LocalLookupTCPAddress = dialAddress(addr)
			}
			return l, nil
		})
	}
	starts = append(starts, func() (server, error) {
		return startBroker(brokerOpts)
	})
	return serve(brokerOpts.Logger, stderr, startAttrs, starts...)
}
