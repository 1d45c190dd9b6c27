package integration

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConnMemory measures the resident memory an idle V2 connection costs
// a broker process: it starts the broker, reads its VmRSS, opens
// connections that each send the magic and an IDENTIFY with
// feature_negotiation and then stay idle, waits for the RSS to settle and
// reports (after-before)/connections. It measures wren (built without
// -race) and, when its binary is there, nsqd, and reports the ratio.
//
// It is slow and wants a quiet machine, so it runs only when asked:
//
//	WREN_CONNMEM=1 go test -run TestConnMemory -v ./integration/
//
// WREN_CONNMEM_CONNS sets the number of connections (default 5000),
// WREN_NSQD the nsqd binary (default /tmp/nsq-ref/bin/nsqd), and
// WREN_CONNMEM_MAX_RATIO, when set, fails the test if wren's figure is
// above that fraction of nsqd's.
func TestConnMemory(t *testing.T) {
	if os.Getenv("WREN_CONNMEM") == "" {
		t.Skip("set WREN_CONNMEM=1 to measure memory per connection")
	}
	conns := 5000
	if s := os.Getenv("WREN_CONNMEM_CONNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("WREN_CONNMEM_CONNS=%q: want a positive number", s)
		}
		conns = n
	}
	raiseFileLimit(t, uint64(conns)+1000)

	bin := filepath.Join(t.TempDir(), "wren")
	build := exec.Command("go", "build", "-o", bin, "../cmd/wren")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building wren: %v\n%s", err, out)
	}
	wrenKiB := measureConnMemory(t, "wren", conns, func(tcp, http, data string) *exec.Cmd {
		return exec.Command(bin, "broker", "--tcp-address="+tcp, "--http-address="+http,
			"--https-address=", "--broadcast-address=127.0.0.1", "--data-path="+data, "--log-level=warn")
	})

	nsqd := os.Getenv("WREN_NSQD")
	if nsqd == "" {
		nsqd = "/tmp/nsq-ref/bin/nsqd"
	}
	if _, err := os.Stat(nsqd); err != nil {
		t.Logf("no nsqd to compare with (%v)", err)
		return
	}
	nsqdKiB := measureConnMemory(t, "nsqd", conns, func(tcp, http, data string) *exec.Cmd {
		return exec.Command(nsqd, "--tcp-address="+tcp, "--http-address="+http,
			"--broadcast-address=127.0.0.1", "--data-path="+data, "--log-level=warn")
	})
	ratio := wrenKiB / nsqdKiB
	t.Logf("RSS per idle IDENTIFYed connection: wren %.1f KiB, nsqd %.1f KiB, ratio %.2f", wrenKiB, nsqdKiB, ratio)
	if s := os.Getenv("WREN_CONNMEM_MAX_RATIO"); s != "" {
		limit, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("WREN_CONNMEM_MAX_RATIO=%q: %v", s, err)
		}
		if ratio > limit {
			t.Errorf("wren uses %.2f of nsqd's memory per connection, want at most %.2f", ratio, limit)
		}
	}
}

// measureConnMemory starts the broker command made by start, opens conns
// idle IDENTIFYed connections and returns the RSS growth per connection in
// KiB.
func measureConnMemory(t *testing.T, name string, conns int, start func(tcp, http, data string) *exec.Cmd) float64 {
	t.Helper()
	addrs := freeAddrs(t, 2)
	cmd := start(addrs[0], addrs[1], t.TempDir())
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Kill()
		<-done
	}()
	pid := cmd.Process.Pid

	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addrs[0], time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s: %v", name, addrs[0], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := settledRSS(t, pid, done)

	identify := identifyCommand()
	open := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := 0; i < conns; i++ {
		c, err := net.DialTimeout("tcp", addrs[0], 5*time.Second)
		if err != nil {
			t.Fatalf("%s: connection %d: %v", name, i, err)
		}
		open = append(open, c)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(identify); err != nil {
			t.Fatalf("%s: connection %d: writing IDENTIFY: %v", name, i, err)
		}
		if err := readIdentifyResponse(c); err != nil {
			t.Fatalf("%s: connection %d: %v", name, i, err)
		}
		_ = c.SetDeadline(time.Time{})
	}
	after := settledRSS(t, pid, done)
	perConn := float64(after-before) / float64(conns)
	t.Logf("%s: VmRSS %d KiB before, %d KiB after %d connections: %.1f KiB per connection",
		name, before, after, conns, perConn)
	return perConn
}

// identifyCommand is the magic and an IDENTIFY like a go-nsq consumer's.
func identifyCommand() []byte {
	body := []byte(`{"client_id":"connmem","hostname":"connmem.local","feature_negotiation":true,` +
		`"heartbeat_interval":30000,"output_buffer_size":16384,"output_buffer_timeout":250,` +
		`"user_agent":"wren-connmem/1.0"}`)
	out := []byte("  V2IDENTIFY\n")
	out = binary.BigEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}

// readIdentifyResponse reads one frame and checks it is a JSON response.
func readIdentifyResponse(c net.Conn) error {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("reading IDENTIFY response: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[:4])
	if size < 4 || size > 1<<16 {
		return fmt.Errorf("IDENTIFY response frame size %d", size)
	}
	data := make([]byte, size-4)
	if _, err := io.ReadFull(c, data); err != nil {
		return fmt.Errorf("reading IDENTIFY response: %w", err)
	}
	if frameType := binary.BigEndian.Uint32(hdr[4:]); frameType != 0 || len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("IDENTIFY response: frame type %d %q", frameType, data)
	}
	return nil
}

// settledRSS polls the process's VmRSS until two readings a second apart
// differ by less than 0.5%, and returns the last one in KiB.
func settledRSS(t *testing.T, pid int, done <-chan struct{}) int64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := int64(-1)
	for {
		select {
		case <-done:
			t.Fatalf("process %d exited", pid)
		default:
		}
		rss, err := vmRSS(pid)
		if err != nil {
			t.Fatal(err)
		}
		if last >= 0 && abs64(rss-last)*200 < last {
			return rss
		}
		if time.Now().After(deadline) {
			t.Logf("VmRSS of %d did not settle (last %d KiB, now %d KiB); using the last reading", pid, last, rss)
			return rss
		}
		last = rss
		time.Sleep(time.Second)
	}
}

func abs64(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// vmRSS reads the resident set size of pid from /proc, in KiB.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// raiseFileLimit lifts the soft limit on open files towards want (capped by
// the hard limit); the brokers started afterwards inherit it.
func raiseFileLimit(t *testing.T, want uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < want {
		t.Fatalf("open file limit %d is below the %d this measurement needs", lim.Cur, want)
	}
}
