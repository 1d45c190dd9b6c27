package integration

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// v2Dial connects to the broker, sends the magic and an IDENTIFY with the
// given heartbeat interval (ms), and reads its OK.
func v2Dial(t *testing.T, addr string, heartbeatMS int) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	body, _ := json.Marshal(map[string]any{"heartbeat_interval": heartbeatMS})
	out := []byte("  V2IDENTIFY\n")
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	out = append(out, body...)
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	frameType, data, err := v2ReadFrame(conn)
	if err != nil || frameType != 0 || string(data) != "OK" {
		t.Fatalf("IDENTIFY: frame %d %q, %v", frameType, data, err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return conn
}

// v2ReadFrame reads one frame of at most 16 MiB.
func v2ReadFrame(r io.Reader) (int32, []byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > 16<<20 {
		return 0, nil, io.ErrUnexpectedEOF
	}
	data := make([]byte, size-4)
	_, err := io.ReadFull(r, data)
	return int32(binary.BigEndian.Uint32(hdr[4:])), data, err
}

// readUntilEOF reads frames until the connection ends, for at most limit.
func readUntilEOF(t *testing.T, conn net.Conn, limit time.Duration) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(limit))
	for {
		if _, _, err := v2ReadFrame(conn); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("connection still open after %s", limit)
			}
			return
		}
	}
}

// waitLog polls the process's log until it holds every one of parts.
func waitLog(t *testing.T, p *wrenProcess, timeout time.Duration, parts ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(p.logs(), "\n") {
			ok := true
			for _, part := range parts {
				ok = ok && strings.Contains(line, part)
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q after %s", parts, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTrickleCutOff runs the binary: a client that sends its command a
// byte every 250 ms with a 1 s heartbeat is closed within about 2 s, and
// the close is logged as "slow command".
func TestTrickleCutOff(t *testing.T) {
	p := startWren(t, t.TempDir())
	conn := v2Dial(t, p.tcpAddr, 1000)
	line := []byte("PUB " + strings.Repeat("t", 60) + "\n")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for i := range line {
			if _, err := conn.Write(line[i : i+1]); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	start := time.Now()
	readUntilEOF(t, conn, 10*time.Second)
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("trickling client closed after %s, want about 2s", took)
	}
	waitLog(t, p, 5*time.Second, `msg="client closed"`, `reason="slow command"`)
}

// TestStuckReaderCutOff runs the binary: a consumer that never reads is
// sent more than its socket holds; /stats still answers at once, and the
// consumer is closed when its write deadline (one heartbeat) passes.
func TestStuckReaderCutOff(t *testing.T) {
	p := startWren(t, t.TempDir())
	conn := v2Dial(t, p.tcpAddr, 3000)
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("SUB stuck ch\nRDY 100\n")); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	body := bytes.Repeat([]byte("x"), 1000<<10)
	// Wait for the SUB before publishing, through /stats.
	waitFor := func(what string, cond func(stats string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := client.Get("http://" + p.http + "/stats?format=json&topic=stuck")
			if err == nil {
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if cond(string(data)) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("the consumer subscribed", func(s string) bool { return strings.Contains(s, `"client_count":1`) })
	for range 24 {
		resp, err := client.Post("http://"+p.http+"/pub?topic=stuck", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// The pump has now written more than loopback buffers hold.
	waitFor("messages in flight", func(s string) bool { return !strings.Contains(s, `"in_flight_count":0`) })
	for range 3 {
		start := time.Now()
		resp, err := client.Get("http://" + p.http + "/stats?format=json")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if took := time.Since(start); took > time.Second {
			t.Errorf("/stats took %s with a stuck consumer", took)
		}
	}
	waitLog(t, p, 10*time.Second, `msg="client closed"`, `reason="write timeout"`)
}

// TestTrickledBodiesCutOff runs the binary: 100 clients each declare a
// 5 MiB MPUB body and send it a few KiB at a time. The broker's memory
// follows what arrived, not what was declared, every one of them is
// closed at its deadline, and a well-behaved publisher keeps working.
func TestTrickledBodiesCutOff(t *testing.T) {
	const clients, declared = 100, 5 << 20
	p := startWren(t, t.TempDir())
	before, err := vmRSS(p.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = v2Dial(t, p.tcpAddr, 1000)
		head := []byte("MPUB trickle\n")
		head = binary.BigEndian.AppendUint32(head, declared)
		head = binary.BigEndian.AppendUint32(head, 1)          // one message
		head = binary.BigEndian.AppendUint32(head, declared-8) // of all the rest
		if _, err := conns[i].Write(head); err != nil {
			t.Fatal(err)
		}
		go func(c net.Conn) {
			chunk := make([]byte, 4096)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				if _, err := c.Write(chunk); err != nil {
					return
				}
				select {
				case <-tick.C:
				case <-stop:
					return
				}
			}
		}(conns[i])
	}
	// While they trickle, a normal publisher is answered.
	ok := v2Dial(t, p.tcpAddr, 5000)
	pub := []byte("PUB fine\n")
	pub = binary.BigEndian.AppendUint32(pub, 2)
	pub = append(pub, "ok"...)
	if _, err := ok.Write(pub); err != nil {
		t.Fatal(err)
	}
	_ = ok.SetReadDeadline(time.Now().Add(5 * time.Second))
	if frameType, data, err := v2ReadFrame(ok); err != nil || frameType != 0 || string(data) != "OK" {
		t.Fatalf("a normal PUB among the trickling clients: frame %d %q, %v", frameType, data, err)
	}
	// The largest RSS seen until the clients are closed.
	peak := make(chan int64, 1)
	sampling := make(chan struct{})
	go func() {
		var most int64
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := vmRSS(p.cmd.Process.Pid); err == nil {
				most = max(most, rss)
			}
			select {
			case <-tick.C:
			case <-sampling:
				peak <- most
				return
			}
		}
	}()
	start := time.Now()
	closed := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	took := time.Since(start)
	close(sampling)
	rss := <-peak
	select {
	case <-p.done:
		t.Fatal("wren exited")
	default:
	}
	t.Logf("%d clients declaring %d MiB each: RSS %d KiB before, at most %d KiB while they trickled; %d of %d closed within %s",
		clients, declared>>20, before, rss, closed, clients, took.Round(time.Millisecond))
	if closed != clients {
		t.Fatalf("%d of %d trickling clients still open after 10 s", clients-closed, clients)
	}
	// Declared in full, the bodies would be 500 MiB.
	if grown := rss - before; grown > 128<<10 {
		t.Fatalf("RSS grew by %d KiB while %d clients trickled bodies: memory follows what was declared", grown, clients)
	}
}
