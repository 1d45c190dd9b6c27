package lookup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
	"wren/internal/listener"
)

// ErrClosed is returned by Start on a Lookup that has been shut down.
var ErrClosed = errors.New("lookup: closed")

// Lookup is one lookup registry with its TCP and HTTP listeners.
type Lookup struct {
	opts     *Options
	logger   *slog.Logger
	hostname string
	registry *registry

	// mu guards the lifecycle state, the listeners and conns.
	mu           sync.Mutex
	started      bool
	closing      bool
	tcpListener  net.Listener
	httpListener net.Listener
	httpServer   *http.Server
	conns        map[*peerConn]struct{}

	serving      sync.WaitGroup // the accept loop and the HTTP server
	handlers     sync.WaitGroup // one per TCP connection
	shutdownOnce sync.Once
	stopped      chan struct{} // closed once every goroutine has returned
}

// New checks opts and returns a registry that has opened nothing yet. It
// keeps opts; do not change them afterwards.
func New(opts *Options) (*Lookup, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	hostname, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("lookup: reading the hostname: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Lookup{
		opts:     opts,
		logger:   logger,
		hostname: hostname,
		registry: newRegistry(opts.InactiveProducerTimeout, opts.TombstoneLifetime),
		conns:    make(map[*peerConn]struct{}),
		stopped:  make(chan struct{}),
	}, nil
}

// Start opens the TCP and HTTP listeners that are not disabled and returns
// once they are accepting.
func (l *Lookup) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.closing:
		return ErrClosed
	case l.started:
		return errors.New("lookup: already started")
	}
	l.started = true
	if addr := l.opts.TCPAddress; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on --tcp-address=%s: %w", addr, err)
		}
		l.tcpListener = ln
	}
	if addr := l.opts.HTTPAddress; addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			if l.tcpListener != nil {
				_ = l.tcpListener.Close()
				l.tcpListener = nil
			}
			return fmt.Errorf("listen on --http-address=%s: %w", addr, err)
		}
		l.httpListener = ln
	}
	if l.tcpListener != nil {
		ln := l.tcpListener
		l.serving.Go(func() { listener.Serve(ln, l.logger, &l.handlers, l.handleTCP) })
	}
	if l.httpListener != nil {
		ln := l.httpListener
		l.httpServer = &http.Server{
			Handler:           newHTTPHandler(l.registry, l.logger),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(l.logger.Handler(), slog.LevelWarn),
		}
		srv := l.httpServer
		l.serving.Go(func() {
			err := srv.Serve(ln)
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				l.logger.Error("lookup http server stopped", "err", err)
			}
		})
	}
	l.logger.Info("lookup listening", "tcp", addrString(l.tcpListener), "http", addrString(l.httpListener))
	return nil
}

// Shutdown stops the registry in this order: close the listeners, close
// every peer connection (which removes its registrations), let HTTP
// requests in progress finish, then wait for every goroutine. It returns
// ctx's error if ctx ends first; a later call waits again. The registry's
// contents are in memory only and go with it.
func (l *Lookup) Shutdown(ctx context.Context) error {
	var err error
	l.shutdownOnce.Do(func() {
		err = l.stop(ctx)
		go func() {
			l.serving.Wait()
			l.handlers.Wait()
			close(l.stopped)
		}()
	})
	select {
	case <-l.stopped:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop closes everything; its error is ctx's if HTTP requests were still
// running when ctx ended (they are then cut off).
func (l *Lookup) stop(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	listeners := []net.Listener{l.tcpListener, l.httpListener}
	conns := make([]*peerConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	srv := l.httpServer
	l.mu.Unlock()

	for _, ln := range listeners {
		if ln != nil {
			_ = ln.Close()
		}
	}
	for _, c := range conns {
		c.close("lookup shutting down")
	}
	var err error
	if srv != nil {
		// Shutdown closes the listener again; that error is expected.
		if err = srv.Shutdown(ctx); errors.Is(err, net.ErrClosed) {
			err = nil
		}
		if err != nil {
			_ = srv.Close()
		}
	}
	l.logger.Info("lookup stopped accepting")
	return err
}

// addConn tracks c until removeConn; false once shutdown has begun.
func (l *Lookup) addConn(c *peerConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Lookup) removeConn(c *peerConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
}

// TCPAddr and HTTPAddr return the listeners' addresses, nil when disabled
// or not started, so that callers may listen on port 0.
func (l *Lookup) TCPAddr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return listenerAddr(l.tcpListener)
}

func (l *Lookup) HTTPAddr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return listenerAddr(l.httpListener)
}

func listenerAddr(ln net.Listener) net.Addr {
	if ln == nil {
		return nil
	}
	return ln.Addr()
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// port is a TCP address's port; 0 for nil.
func port(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return 0
}
