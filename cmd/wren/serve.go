package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// server is what serve needs of a started broker or lookup.
type server interface {
	Shutdown(ctx context.Context) error
}

// startFunc creates and starts one server. When it fails it leaves nothing
// open, and its server result is ignored.
type startFunc func() (server, error)

// serve runs one process: it starts the servers in order, waits for SIGINT
// or SIGTERM, then shuts them down in reverse order, all under one
// shutdownTimeout. A later start may rely on state an earlier one set, such
// as the embedded lookup's address. If a start fails, the servers already
// running are shut down and serve prints one line "wren: <err>" and returns
// 1; it also returns 1 when a shutdown fails, and 0 otherwise.
func serve(logger *slog.Logger, stderr io.Writer, startAttrs []any, starts ...startFunc) int {
	// Catch signals before starting so that one arriving while the
	// listeners open still leads to an orderly shutdown.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	logger.Info("wren starting", startAttrs...)

	var running []server
	for _, start := range starts {
		s, err := start()
		if err != nil {
			shutdownAll(logger, running)
			// Last, so that the reason is the final line on stderr.
			fmt.Fprintf(stderr, "wren: %s\n", oneLine(err))
			return 1
		}
		running = append(running, s)
	}
	sig := <-signals
	// A second signal now kills the process the default way, for an
	// operator who does not want to wait for the queues to be persisted.
	signal.Stop(signals)
	logger.Info("shutting down", "signal", sig.String(), "timeout", shutdownTimeout)
	if !shutdownAll(logger, running) {
		return 1
	}
	return 0
}

// shutdownAll shuts servers down last-started first under one
// shutdownTimeout, so that the broker leaves its embedded lookup before the
// lookup goes. It reports whether every shutdown succeeded; failures are
// logged and do not stop the others.
func shutdownAll(logger *slog.Logger, servers []server) bool {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	ok := true
	for i := len(servers) - 1; i >= 0; i-- {
		if err := servers[i].Shutdown(ctx); err != nil {
			logger.Error("shutdown failed", "err", err)
			ok = false
		}
	}
	return ok
}
