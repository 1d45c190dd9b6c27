// Package integration runs the wren binary as a real process, the way users
// run it, and talks to it with go-nsq over loopback.
package integration

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var wrenBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wren-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wrenBinary = filepath.Join(dir, "wren")
	build := exec.Command("go", "build", "-race", "-o", wrenBinary, "../cmd/wren")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building wren:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// wrenProcess is one running wren.
type wrenProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	tcpAddr string
	http    string
	done    chan struct{}
	mu      sync.Mutex
	log     strings.Builder
}

var listeningLine = regexp.MustCompile(`msg="broker listening" tcp=(\S+) http=(\S*)`)

// startWren runs `wren broker` with args on loopback port 0 and waits until
// it logs its listening addresses.
func startWren(t *testing.T, dataPath string, args ...string) *wrenProcess {
	t.Helper()
	full := append([]string{"broker",
		"--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", "--https-address=",
		"--broadcast-address=127.0.0.1", "--data-path=" + dataPath}, args...)
	return startProcess(t, exec.Command(wrenBinary, full...))
}

// startProcess runs a wren command line and waits until its broker logs
// its listening addresses.
func startProcess(t *testing.T, cmd *exec.Cmd) *wrenProcess {
	t.Helper()
	return launch(t, cmd, func(line string) (tcp, http string, ok bool) {
		if m := listeningLine.FindStringSubmatch(line); m != nil {
			return m[1], m[2], true
		}
		return "", "", false
	})
}

// launch runs cmd, keeps its stderr for the test's log, and waits until
// ready finds the listening addresses in a line of it.
func launch(t *testing.T, cmd *exec.Cmd, ready func(line string) (tcp, http string, ok bool)) *wrenProcess {
	t.Helper()
	p := &wrenProcess{t: t, cmd: cmd, done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readyC := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if tcp, http, ok := ready(line); ok {
				select {
				case readyC <- [2]string{tcp, http}:
				default: // said again; the first is what counts
				}
			}
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	select {
	case addrs := <-readyC:
		p.tcpAddr, p.http = addrs[0], addrs[1]
	case <-p.done:
		t.Fatalf("%s exited during start:\n%s", filepath.Base(cmd.Path), p.logs())
	case <-time.After(20 * time.Second):
		p.kill()
		t.Fatalf("%s did not start listening:\n%s", filepath.Base(cmd.Path), p.logs())
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s %v logs:\n%s", filepath.Base(cmd.Path), p.cmd.Args[1:], p.logs())
		}
	})
	return p
}

func (p *wrenProcess) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// stop sends SIGTERM and waits for a clean exit.
func (p *wrenProcess) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill()
		p.t.Fatalf("wren did not exit after SIGTERM:\n%s", p.logs())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("wren exited with %d after SIGTERM:\n%s", code, p.logs())
	}
}

func (p *wrenProcess) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}
