// Package statsdtest is a statsd daemon for tests: a UDP listener on
// loopback that keeps every datagram it receives.
package statsdtest

import (
	"net"
	"sync"
	"testing"
)

// Sink receives datagrams until the test ends.
type Sink struct {
	conn    net.PacketConn
	mu      sync.Mutex
	packets []string
}

// Listen starts a sink on 127.0.0.1, port 0, closed when the test ends.
func Listen(t testing.TB) *Sink {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Sink{conn: conn}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.packets = append(s.packets, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// Addr is the sink's host:port.
func (s *Sink) Addr() string { return s.conn.LocalAddr().String() }

// Packets returns every datagram received so far, in order.
func (s *Sink) Packets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.packets...)
}

// UnusedAddr returns a loopback UDP address where nothing listens.
func UnusedAddr(t testing.TB) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.LocalAddr().String()
}
