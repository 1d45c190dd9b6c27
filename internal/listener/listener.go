// Package listener is the accept loop every wren listener shares: the
// broker's TCP listener and the lookup's.
package listener

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Serve accepts connections until l is closed, running handle for each in
// its own goroutine tracked by conns, so a caller can wait for every
// handler on shutdown. Accept errors other than closing back off from 5 ms
// up to 1 s instead of spinning.
func Serve(l net.Listener, logger *slog.Logger, conns *sync.WaitGroup, handle func(net.Conn)) {
	var delay time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			logger.Warn("accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		conns.Go(func() { handle(conn) })
	}
}
