package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDataPathLocked: a second broker on a data path in use refuses to
// start with one clear line and a non-zero exit, and the first keeps going.
func TestDataPathLocked(t *testing.T) {
	data := t.TempDir()
	w := startWren(t, data)
	out, err := exec.Command(wrenBinary, "broker", "--tcp-address=127.0.0.1:0",
		"--http-address=127.0.0.1:0", "--https-address=", "--data-path="+data).CombinedOutput()
	if err == nil {
		t.Fatalf("second broker on the same data path started:\n%s", out)
	}
	if !strings.Contains(string(out), "in use by another process") {
		t.Errorf("second broker's output does not say the data path is in use:\n%s", out)
	}
	p := producer(t, w.tcpAddr)
	if err := p.Publish("still_up", []byte("x")); err != nil {
		t.Fatalf("first broker stopped serving: %v", err)
	}
}
