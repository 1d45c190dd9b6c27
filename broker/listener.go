package broker

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// serveListener accepts connections until l is closed, running handle for
// each in its own goroutine tracked by conns. Accept errors other than
// closing back off from 5 ms up to 1 s instead of spinning.
func serveListener(l net.Listener, logger *slog.Logger, conns *sync.WaitGroup, handle func(net.Conn)) {
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
		conns.Add(1)
		go func() {
			defer conns.Done()
			handle(conn)
		}()
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
