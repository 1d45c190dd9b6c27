package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"wren/internal/bench"
)

func TestBenchCommandLine(t *testing.T) {
	versionLine := "wren " + version + " (nsq 1.3.0 compatible)\n"
	tests := []runCase{
		{name: "no mode", args: []string{"bench"}, wantCode: 2, wantStderr: "wren: bench needs a mode"},
		{name: "unknown mode", args: []string{"bench", "frob"}, wantCode: 2, wantStderr: `wren: unknown bench mode "frob"`},
		{name: "help", args: []string{"bench", "help"}, wantStdout: "Usage:\n  wren bench publish"},
		{name: "mode help", args: []string{"bench", "consume", "-h"}, wantStdout: "Usage:\n  wren bench publish"},
		{name: "mode version", args: []string{"bench", "sink", "--version"}, wantStdout: versionLine},
		{name: "unknown flag", args: []string{"bench", "publish", "--bogus"}, wantCode: 2, wantStderr: "wren: unknown flag --bogus"},
		{name: "flag of another mode", args: []string{"bench", "publish", "--topic=t", "--rdy=5"}, wantCode: 2, wantStderr: "wren: unknown flag --rdy"},
		{name: "bad number", args: []string{"bench", "publish", "--batch=x"}, wantCode: 2, wantStderr: `wren: invalid value "x" for flag --batch`},
		{name: "bad duration", args: []string{"bench", "consume", "--duration=soon"}, wantCode: 2, wantStderr: `wren: invalid value "soon" for flag --duration`},
		{name: "missing topic", args: []string{"bench", "publish"}, wantCode: 2, wantStderr: "wren: --topic is required\n"},
		{name: "invalid values in one line", args: []string{"bench", "consume", "--topic=t", "--rdy=0", "--duration=0s"}, wantCode: 2,
			wantStderr: "wren: --channel is required; --rdy must be >= 1, got 0; --duration must be > 0, got 0s\n"},
		{name: "latency needs a rate", args: []string{"bench", "latency", "--topic=t", "--channel=c", "--rate=0"}, wantCode: 2, wantStderr: "wren: --rate must be >= 1"},
		{name: "stray argument", args: []string{"bench", "publish", "--topic=t", "extra"}, wantCode: 2, wantStderr: `wren: unexpected argument "extra"`},
		{name: "sink empty address", args: []string{"bench", "sink", "--tcp-address="}, wantCode: 2, wantStderr: "wren: --tcp-address must not be empty"},
		{name: "broker refused", args: []string{"bench", "publish", "--topic=t", "--addr=" + closedPort(t)}, wantCode: 1, wantStderr: "wren: bench publish: "},
	}
	runCases(t, tests)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestBenchUsageListsEveryModeFlag(t *testing.T) {
	var stdout bytes.Buffer
	printBenchUsage(&stdout)
	for _, want := range []string{
		"publish flags:", "--batch int", "--rate int", "consume flags:", "--rdy int", "(default 2500)",
		"latency flags:", "--count int", "--json", "sink flags:", `--tcp-address string`, `(default "127.0.0.1:4150")`,
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("bench usage lacks %q", want)
		}
	}
}

func TestBenchPublishJSONAgainstSink(t *testing.T) {
	sink, err := bench.NewSink(&bench.SinkOptions{TCPAddress: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sink.Shutdown(ctx)
	})
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "publish", "--addr", sink.Addr().String(), "--topic", "t", "--batch", "10", "--count", "250", "--json"}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("run = %d, stderr %q", code, stderr.String())
	}
	var summary struct {
		Mode     string `json:"mode"`
		Messages int64  `json:"messages"`
		Latency  struct {
			Samples int64 `json:"samples"`
		} `json:"latency"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &summary); err != nil {
		t.Fatalf("stdout %q is not JSON: %v", stdout.String(), err)
	}
	if summary.Mode != "publish" || summary.Messages != 250 || summary.Latency.Samples != 25 || sink.Messages() != 250 {
		t.Errorf("summary %+v, sink %d; want publish, 250 messages in 25 round trips", summary, sink.Messages())
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q, want nothing when it is not a terminal", stderr.String())
	}
}
