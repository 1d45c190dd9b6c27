package broker

import (
	"errors"
	"log/slog"
	"os"
	"strconv"
)

// closeReason says why a connection ended. The first reason given to
// client.close is the one kept and logged: a read that fails because the
// broker closed the socket on shutdown does not replace "broker shutdown".
type closeReason int32

const (
	closeNone             closeReason = iota
	closeClientQuit                   // the client closed the connection (EOF)
	closeReadError                    // reading from the socket failed
	closeWriteError                   // writing to the socket failed
	closeProtocolError                // the client sent something fatal (an E_* error)
	closeHeartbeatTimeout             // no command begun within two heartbeat intervals
	closeTLSHandshake                 // the TLS upgrade IDENTIFY negotiated failed
	closeChannelDeleted               // the client's channel was deleted
	closeBrokerShutdown               // the broker is shutting down
	closeSlowCommand                  // a command line not whole within two heartbeat intervals
	closeSlowBody                     // a command's body not whole within two heartbeat intervals
	closeWriteTimeout                 // a write blocked for a heartbeat interval: the client stopped reading
)

var closeReasonNames = [...]string{
	closeNone:             "none",
	closeClientQuit:       "client quit",
	closeReadError:        "read error",
	closeWriteError:       "write error",
	closeProtocolError:    "protocol error",
	closeHeartbeatTimeout: "heartbeat timeout",
	closeTLSHandshake:     "TLS handshake failed",
	closeChannelDeleted:   "channel deleted",
	closeBrokerShutdown:   "broker shutdown",
	closeSlowCommand:      "slow command",
	closeSlowBody:         "slow body",
	closeWriteTimeout:     "write timeout",
}

func (r closeReason) String() string {
	if r >= 0 && int(r) < len(closeReasonNames) {
		return closeReasonNames[r]
	}
	return "closeReason(" + strconv.Itoa(int(r)) + ")"
}

// logLevel is how a close for this reason is logged: a client's own quit
// is routine, everything else is worth seeing at the default level.
func (r closeReason) logLevel() slog.Level {
	if r == closeClientQuit {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// readCloseReason classifies the error that ended the reader loop's read
// of a command.
func readCloseReason(err error) closeReason {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		// Read deadlines are set only with heartbeats (deadlineReader).
		return closeHeartbeatTimeout
	case errors.Is(err, errLineFull):
		return closeProtocolError
	}
	return closeReadError
}

// tlsHandshakeError marks IDENTIFY's failed TLS upgrade, so the close that
// follows its E_IDENTIFY_FAILED says why; its text is the cause's.
type tlsHandshakeError struct{ err error }

func (e tlsHandshakeError) Error() string { return e.err.Error() }
func (e tlsHandshakeError) Unwrap() error { return e.err }
