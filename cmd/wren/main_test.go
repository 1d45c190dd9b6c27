package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"wren/broker"
)

func TestRun(t *testing.T) {
	versionLine := "wren " + version + " (nsq 1.3.0 compatible)\n"
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string // prefix
		wantStderr string // prefix
	}{
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
	}
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

func TestUsageListsEveryFlag(t *testing.T) {
	var stdout bytes.Buffer
	printUsage(&stdout)
	flags, err := newBrokerFlags(broker.NewOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range flags.options {
		if opt.flagName != "" && !strings.Contains(stdout.String(), "\n  --"+opt.flagName) {
			t.Errorf("usage does not list --%s", opt.flagName)
		}
	}
	for _, want := range []string{"--config string", "--tls-required[=value]", "--mem-queue-size int", "(default 10000)", `(default "0.0.0.0:4150")`} {
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
			cmd := exec.CommandContext(ctx, bin, "broker",
				"--data-path="+t.TempDir(),
				"--tcp-address=127.0.0.1:0",
				"--http-address=127.0.0.1:0",
				"--https-address=127.0.0.1:0",
				"--broadcast-address=127.0.0.1",
				"--log-level=debug",
			)
			stderr := &lockedBuffer{changed: make(chan struct{}, 1)}
			cmd.Stderr = stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()

			// The start line is logged after the signal handler is installed.
			var err error
			waiting := true
			for waiting && !strings.Contains(stderr.String(), "wren starting") {
				select {
				case <-stderr.changed:
				case err = <-exited:
					waiting = false
				case <-ctx.Done():
					t.Fatalf("no start line; stderr:\n%s", stderr.String())
				}
			}
			if waiting {
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				err = <-exited
			}
			if err != nil {
				last := lastLine(stderr.String())
				if strings.HasPrefix(last, "wren: ") && !strings.Contains(stderr.String(), "shutting down") {
					t.Skipf("the broker did not start (%s); signal handling not exercised", last)
				}
				t.Fatalf("wren exited with %v after %s; stderr:\n%s", err, sig, stderr.String())
			}
			if !strings.Contains(stderr.String(), "shutting down") {
				t.Errorf("no shutdown line; stderr:\n%s", stderr.String())
			}
		})
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
