package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"wren/broker"
	"wren/lookup"
)

// runCase is one command line and what run must answer to it.
type runCase struct {
	name       string
	args       []string
	wantCode   int
	wantStdout string // prefix
	wantStderr string // prefix
}

// runCases runs each case through run and checks its exit code and
// output; a failure must say so in exactly one line.
func runCases(t *testing.T, tests []runCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("run(%q) = %d, want %d (stderr %q)", tt.args, code, tt.wantCode, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), tt.wantStdout) || (tt.wantStdout == "" && stdout.Len() > 0) {
				t.Errorf("run(%q) stdout = %q, want prefix %q", tt.args, stdout.String(), tt.wantStdout)
			}
			if !strings.HasPrefix(stderr.String(), tt.wantStderr) || (tt.wantStderr == "" && stderr.Len() > 0) {
				t.Errorf("run(%q) stderr = %q, want prefix %q", tt.args, stderr.String(), tt.wantStderr)
			}
			if tt.wantCode != 0 && strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("run(%q) stderr = %q, want exactly one line", tt.args, stderr.String())
			}
		})
	}
}

func TestRun(t *testing.T) {
	versionLine := "wren " + version + " (nsq 1.3.0 compatible)\n"
	tests := []runCase{
		{name: "version command", args: []string{"version"}, wantStdout: versionLine},
		{name: "version flag", args: []string{"--version"}, wantStdout: versionLine},
		{name: "broker version flag", args: []string{"broker", "--version"}, wantStdout: versionLine},
		{name: "nsqd version flag", args: []string{"nsqd", "-version"}, wantStdout: versionLine},
		{name: "help command", args: []string{"help"}, wantStdout: "Usage:\n"},
		{name: "help flag", args: []string{"-h"}, wantStdout: "Usage:\n"},
		{name: "broker help flag", args: []string{"broker", "--help"}, wantStdout: "Usage:\n"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `wren: unknown command "frobnicate"`},
		{name: "no command, bad flag", args: []string{"--bogus"}, wantCode: 2, wantStderr: "wren: unknown flag --bogus"},
		{name: "broker bad flag", args: []string{"broker", "--mem-queue-size=x"}, wantCode: 2, wantStderr: `wren: invalid value "x" for flag --mem-queue-size`},
		{name: "nsqd bad flag", args: []string{"nsqd", "--bogus"}, wantCode: 2, wantStderr: "wren: unknown flag --bogus"},
		{name: "validation", args: []string{"--max-msg-size=0", "--node-id=-1"}, wantCode: 2, wantStderr: "wren: --node-id must be in"},
		{name: "bad auth method", args: []string{"broker", "--auth-http-request-method=put"}, wantCode: 2, wantStderr: "wren: --auth-http-request-method must be get or post, got \"put\"\n"},
		{name: "unknown experiment", args: []string{"broker", "--enable-experiment=warp"}, wantCode: 2, wantStderr: `wren: --enable-experiment: unknown experiment "warp" (valid: "topology-aware-consumption")` + "\n"},
		{name: "lookup version flag", args: []string{"lookup", "--version"}, wantStdout: versionLine},
		{name: "nsqlookupd version flag", args: []string{"nsqlookupd", "-version"}, wantStdout: versionLine},
		{name: "lookup help flag", args: []string{"lookup", "-h"}, wantStdout: "Usage:\n"},
		{name: "nsqlookupd help flag", args: []string{"nsqlookupd", "--help"}, wantStdout: "Usage:\n"},
		{name: "lookup bad flag", args: []string{"lookup", "--bogus"}, wantCode: 2, wantStderr: "wren: unknown flag --bogus"},
		{name: "lookup broker flag", args: []string{"nsqlookupd", "--mem-queue-size=1"}, wantCode: 2, wantStderr: "wren: unknown flag --mem-queue-size"},
		{name: "lookup bad duration", args: []string{"lookup", "--tombstone-lifetime=x"}, wantCode: 2, wantStderr: `wren: invalid value "x" for flag --tombstone-lifetime`},
		{name: "lookup validation", args: []string{"lookup", "--tcp-address=nope"}, wantCode: 2, wantStderr: "wren: --tcp-address: "},
		{name: "broker has no lookup flags", args: []string{"broker", "--lookup-tcp-address="}, wantCode: 2, wantStderr: "wren: unknown flag --lookup-tcp-address"},
		{name: "combined lookup validation", args: []string{"--lookup-tcp-address=nope"}, wantCode: 2, wantStderr: "wren: --lookup-tcp-address: "},
		{name: "combined both invalid", args: []string{"--node-id=-1", "--lookup-inactive-producer-timeout=0s"}, wantCode: 2, wantStderr: "wren: --node-id must be in [0,1024), got -1; --lookup-inactive-producer-timeout must be > 0"},
	}
	runCases(t, tests)
}

func TestUsageListsEveryFlag(t *testing.T) {
	var stdout bytes.Buffer
	printUsage(&stdout)
	brokerFlags, err := newBrokerFlags(broker.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	combined, err := newCombinedFlags(broker.NewOptions(), lookup.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	lookupFlags, err := newLookupFlags(lookup.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	usage := stdout.String()
	brokerPart, rest, _ := strings.Cut(usage, "\nEmbedded lookup flags")
	combinedPart, lookupPart, _ := strings.Cut(rest, "\nLookup flags")
	for _, section := range []struct {
		name    string
		text    string
		options []option
	}{
		{"broker", brokerPart, brokerFlags.options},
		{"embedded lookup", combinedPart, combined.lookupOptions},
		{"lookup", lookupPart, lookupFlags.options},
	} {
		for _, opt := range section.options {
			if opt.flagName != "" && !strings.Contains(section.text, "\n  --"+opt.flagName) {
				t.Errorf("usage does not list --%s among the %s flags", opt.flagName, section.name)
			}
		}
	}
	for _, want := range []string{
		"wren [flags]", "wren lookup [flags]", "wren nsqlookupd [flags]",
		"--config string", "--tls-required[=value]", "--mem-queue-size int", "(default 10000)", `(default "0.0.0.0:4150")`,
		`--lookup-tcp-address string`, `(default "0.0.0.0:4160")`, "--lookup-tombstone-lifetime duration", "(default 45s)",
		`(default "[nsqlookupd] ")`, "--inactive-producer-timeout duration",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("usage lacks %q", want)
		}
	}
}

func TestPrefixWriter(t *testing.T) {
	var out bytes.Buffer
	w := &prefixWriter{prefix: []byte("[nsqd] "), w: &out, lineStart: true}
	for _, chunk := range []string{"one\n", "two ", "halves\nthree\nfo", "ur\n"} {
		n, err := w.Write([]byte(chunk))
		if err != nil || n != len(chunk) {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	want := "[nsqd] one\n[nsqd] two halves\n[nsqd] three\n[nsqd] four\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestSetUpLogging(t *testing.T) {
	opts := broker.NewOptions()
	opts.LogLevel = "warn"
	var out bytes.Buffer
	setUpLogging(opts, &out)
	opts.Logger.Info("hidden")
	opts.Logger.Warn("shown", "topic", "a\nb")
	opts.LevelVar.Set(-4) // debug, as PUT /config/log_level would
	opts.Logger.Debug("now shown")

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2: %q", len(lines), out.String())
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, "[nsqd] time=") {
			t.Errorf("line %q lacks the prefix", line)
		}
	}
	if !strings.Contains(lines[0], "msg=shown") || !strings.Contains(lines[1], "msg=\"now shown\"") {
		t.Errorf("unexpected lines %q", lines)
	}

	opts = broker.NewOptions()
	opts.LogPrefix = ""
	out.Reset()
	setUpLogging(opts, &out)
	opts.Logger.Info("plain")
	if !strings.HasPrefix(out.String(), "time=") {
		t.Errorf("with an empty prefix got %q", out.String())
	}
}

// buildWren builds the binary once per test with the given -ldflags.
func buildWren(t *testing.T, ldflags string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found:", err)
	}
	bin := filepath.Join(t.TempDir(), "wren")
	cmd := exec.Command(goTool, "build", "-ldflags", ldflags, "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildWren(t, "-X main.version=9.9.9-test")

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--bogus")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("wren --bogus: %v, want exit status 2", err)
	}
	if got := stderr.String(); got != "wren: unknown flag --bogus (see wren help)\n" {
		t.Errorf("wren --bogus stderr = %q, want one line", got)
	}
	if stdout.Len() != 0 {
		t.Errorf("wren --bogus stdout = %q, want nothing", stdout.String())
	}

	stdout.Reset()
	stderr.Reset()
	cmd = exec.Command(bin, "lookup", "--bogus")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("wren lookup --bogus: %v, want exit status 2", err)
	}
	if got := stderr.String(); got != "wren: unknown flag --bogus (see wren help)\n" {
		t.Errorf("wren lookup --bogus stderr = %q, want one line", got)
	}
	if stdout.Len() != 0 {
		t.Errorf("wren lookup --bogus stdout = %q, want nothing", stdout.String())
	}

	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("wren --version: %v", err)
	}
	if got, want := string(out), "wren 9.9.9-test (nsq 1.3.0 compatible)\n"; got != want {
		t.Errorf("wren --version = %q, want %q", got, want)
	}
}

// TestBinaryShutsDownOnSignal starts the broker on ephemeral ports, sends
// SIGTERM once it is running and expects a clean exit.
func TestBinaryShutsDownOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWren(t, "")
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p := startWren(t, ctx, bin, "broker",
				"--data-path="+t.TempDir(),
				"--tcp-address=127.0.0.1:0",
				"--http-address=127.0.0.1:0",
				"--https-address=127.0.0.1:0",
				"--broadcast-address=127.0.0.1",
				"--log-level=debug",
			)
			// The start line is logged after the signal handler is installed.
			if _, running := p.waitForLog(ctx, startLine); !running {
				p.skipIfNotStarted()
			}
			p.stop(ctx, sig)
			if !strings.Contains(p.stderr.String(), "shutting down") {
				t.Errorf("no shutdown line; stderr:\n%s", p.stderr.String())
			}
		})
	}
}

// TestBinaryLookup runs wren lookup alone on ephemeral ports and stops it
// with SIGTERM.
func TestBinaryLookup(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWren(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startWren(t, ctx, bin, "lookup", "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0")
	match, running := p.waitForLog(ctx, lookupListeningLine)
	if !running {
		p.skipIfNotStarted()
	}
	resp, err := http.Get("http://" + match[2] + "/ping")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "OK" {
		t.Errorf("GET /ping = %q, want OK", body)
	}
	p.stop(ctx, syscall.SIGTERM)
	if got := p.stderr.String(); !strings.Contains(got, "[nsqlookupd] ") || strings.Contains(got, "[nsqd] ") {
		t.Errorf("want only [nsqlookupd] log lines; stderr:\n%s", got)
	}
}

// TestBinaryCombined runs wren with no command: the broker must register
// with its own embedded lookup, which then lists it as the one producer.
func TestBinaryCombined(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildWren(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := startWren(t, ctx, bin,
		"--tcp-address=127.0.0.1:0",
		"--http-address=127.0.0.1:0",
		"--https-address=",
		"--lookup-tcp-address=127.0.0.1:0",
		"--lookup-http-address=127.0.0.1:0",
		"--data-path="+t.TempDir(),
	)
	lookupMatch, running := p.waitForLog(ctx, lookupListeningLine)
	if !running {
		p.skipIfNotStarted()
	}
	brokerMatch, running := p.waitForLog(ctx, brokerListeningLine)
	if !running {
		p.skipIfNotStarted()
	}
	_, brokerTCPPort, err := net.SplitHostPort(brokerMatch[1])
	if err != nil {
		t.Fatal(err)
	}

	nodesURL := "http://" + lookupMatch[2] + "/nodes"
	var nodes struct {
		Producers []struct {
			RemoteAddress string `json:"remote_address"`
			TCPPort       int    `json:"tcp_port"`
		} `json:"producers"`
	}
	waitFor(t, ctx, func() (bool, string) {
		resp, err := http.Get(nodesURL)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(body, &nodes); err != nil {
			return false, fmt.Sprintf("GET /nodes: %v: %s", err, body)
		}
		return len(nodes.Producers) > 0, fmt.Sprintf("GET /nodes = %s", body)
	})
	if len(nodes.Producers) != 1 || strconv.Itoa(nodes.Producers[0].TCPPort) != brokerTCPPort {
		t.Errorf("GET /nodes producers = %+v, want one with tcp_port %s", nodes.Producers, brokerTCPPort)
	}

	p.stop(ctx, syscall.SIGTERM)
	got := p.stderr.String()
	if !strings.Contains(got, "[nsqd] ") || !strings.Contains(got, "[nsqlookupd] ") {
		t.Errorf("want both [nsqd] and [nsqlookupd] log lines; stderr:\n%s", got)
	}
}

var (
	startLine           = regexp.MustCompile(`msg="wren starting"`)
	brokerListeningLine = regexp.MustCompile(`msg="broker listening" tcp=(\S+) http=(\S+)`)
	lookupListeningLine = regexp.MustCompile(`msg="lookup listening" tcp=(\S+) http=(\S+)`)
)

// wrenProcess is a running wren binary whose stderr the test reads.
type wrenProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan error // receives Wait's result once
	done   bool       // exited has been received from
	err    error      // Wait's result, once done
}

// startWren starts bin with args; the process is killed at cleanup if the
// test has not stopped it.
func startWren(t *testing.T, ctx context.Context, bin string, args ...string) *wrenProcess {
	t.Helper()
	p := &wrenProcess{
		t:      t,
		cmd:    exec.CommandContext(ctx, bin, args...),
		stderr: &lockedBuffer{changed: make(chan struct{}, 1)},
		exited: make(chan error, 1),
	}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if !p.done {
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// waitForLog waits for a stderr line matching re and returns its
// submatches. running is false when the process exited first.
func (p *wrenProcess) waitForLog(ctx context.Context, re *regexp.Regexp) (match []string, running bool) {
	p.t.Helper()
	for {
		if match := re.FindStringSubmatch(p.stderr.String()); match != nil {
			return match, true
		}
		if p.done {
			return nil, false
		}
		select {
		case <-p.stderr.changed:
		case p.err = <-p.exited:
			// Look once more: the line may have come with the exit.
			p.done = true
		case <-ctx.Done():
			p.t.Fatalf("no log line matching %s; stderr:\n%s", re, p.stderr.String())
		}
	}
}

// skipIfNotStarted is called when the process exited before it was
// running: a start failure of this machine (a busy data path, no sockets)
// skips the test; any other exit fails it.
func (p *wrenProcess) skipIfNotStarted() {
	p.t.Helper()
	last := lastLine(p.stderr.String())
	if p.err != nil && strings.HasPrefix(last, "wren: ") {
		p.t.Skipf("wren did not start (%s); not exercised", last)
	}
	p.t.Fatalf("wren exited with %v before it was running; stderr:\n%s", p.err, p.stderr.String())
}

// stop sends sig and expects exit status 0.
func (p *wrenProcess) stop(ctx context.Context, sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case p.err = <-p.exited:
		p.done = true
	case <-ctx.Done():
		p.t.Fatalf("wren did not exit after %s; stderr:\n%s", sig, p.stderr.String())
	}
	if p.err != nil {
		p.t.Fatalf("wren exited with %v after %s; stderr:\n%s", p.err, sig, p.stderr.String())
	}
}

// waitFor polls cond until it holds, failing the test with cond's last
// description when ctx ends.
func waitFor(t *testing.T, ctx context.Context, cond func() (ok bool, status string)) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, status := cond()
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("gave up waiting: %s", status)
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSuffix(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// lockedBuffer collects a child's stderr and signals each write.
type lockedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
