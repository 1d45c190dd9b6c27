package main

import (
	"fmt"
	"io"

	"wren/broker"
	"wren/lookup"
)

// printUsage writes the help text: the modes, then each mode's flags in the
// order their Options structs declare them.
func printUsage(w io.Writer) {
	fmt.Fprint(w, `Usage:
  wren [flags]              run the broker and an embedded lookup in one process
  wren broker [flags]       run the broker only, a drop-in for nsqd
  wren nsqd [flags]         the same as wren broker
  wren lookup [flags]       run the lookup only, a drop-in for nsqlookupd
  wren nsqlookupd [flags]   the same as wren lookup
  wren bench MODE [flags]   load-test any NSQ broker, or run a sink (see wren bench help)
  wren version              print the version
  wren help                 print this help

Flags may be written -name or --name; lists may be repeated or comma-separated.

Broker flags (wren, wren broker):
`)
	brokerFlags, err := newBrokerFlags(broker.NewOptions())
	if err != nil {
		fmt.Fprintf(w, "  (cannot list flags: %v)\n", err)
		return
	}
	printFlags(w, brokerFlags, brokerFlags.options)

	fmt.Fprint(w, `
Embedded lookup flags (wren with no command only). An empty address turns
that listener off; with both empty no lookup runs. The lookup uses the
broker's --broadcast-address and --log-level, logs with the prefix
"[nsqlookupd] ", and reads these from --config as lookup_tcp_address and
so on, next to nsqd's keys:
`)
	combined, err := newCombinedFlags(broker.NewOptions(), lookup.NewOptions())
	if err != nil {
		fmt.Fprintf(w, "  (cannot list flags: %v)\n", err)
		return
	}
	printOptionFlags(w, combined.flags, combined.lookupOptions)

	fmt.Fprint(w, "\nLookup flags (wren lookup):\n")
	lookupFlags, err := newLookupFlags(lookup.NewOptions())
	if err != nil {
		fmt.Fprintf(w, "  (cannot list flags: %v)\n", err)
		return
	}
	printFlags(w, lookupFlags, lookupFlags.options)
}
