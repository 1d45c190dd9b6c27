package lookup

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNewOptionsDefaults(t *testing.T) {
	o := NewOptions()
	if o.TCPAddress != "0.0.0.0:4160" || o.HTTPAddress != "0.0.0.0:4161" ||
		o.InactiveProducerTimeout != 5*time.Minute || o.TombstoneLifetime != 45*time.Second ||
		o.LogLevel != "info" || o.LogPrefix != "[nsqlookupd] " || o.BroadcastAddress == "" {
		t.Fatalf("NewOptions() = %+v", o)
	}
	if err := o.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// Every configurable field carries the nsqlookupd flag name and help text
// that cmd/wren builds its flags from.
func TestOptionsFlagTags(t *testing.T) {
	want := map[string]string{
		"LogLevel": "log-level", "LogPrefix": "log-prefix",
		"TCPAddress": "tcp-address", "HTTPAddress": "http-address", "BroadcastAddress": "broadcast-address",
		"InactiveProducerTimeout": "inactive-producer-timeout", "TombstoneLifetime": "tombstone-lifetime",
	}
	typ := reflect.TypeFor[Options]()
	for i := range typ.NumField() {
		field := typ.Field(i)
		name, ok := want[field.Name]
		if !ok {
			if field.Tag.Get("flag") != "" || field.Tag.Get("json") != "-" {
				t.Errorf("%s: unexpected tags %q", field.Name, field.Tag)
			}
			continue
		}
		if got := field.Tag.Get("flag"); got != name {
			t.Errorf("%s: flag %q, want %q", field.Name, got, name)
		}
		if field.Tag.Get("help") == "" {
			t.Errorf("%s: no help", field.Name)
		}
		delete(want, field.Name)
	}
	if len(want) != 0 {
		t.Errorf("fields missing: %v", want)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Options)
		wantErr string
	}{
		{"disabled listeners", func(o *Options) { o.TCPAddress, o.HTTPAddress = "", "" }, ""},
		{"log level", func(o *Options) { o.LogLevel = "loud" }, "--log-level"},
		{"log level any case", func(o *Options) { o.LogLevel = "WARN" }, ""},
		{"tcp address", func(o *Options) { o.TCPAddress = "4160" }, "--tcp-address"},
		{"tcp port", func(o *Options) { o.TCPAddress = "127.0.0.1:99999" }, "--tcp-address"},
		{"http address", func(o *Options) { o.HTTPAddress = "/tmp/lookup.sock" }, "--http-address"},
		{"inactive timeout", func(o *Options) { o.InactiveProducerTimeout = 0 }, "--inactive-producer-timeout"},
		{"tombstone lifetime", func(o *Options) { o.TombstoneLifetime = -time.Second }, "--tombstone-lifetime"},
		{"tombstones off", func(o *Options) { o.TombstoneLifetime = 0 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions()
			tt.change(o)
			before := *o
			err := o.Validate()
			if *o != before {
				t.Fatal("Validate changed the options")
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate: %v, want an error about %s", err, tt.wantErr)
			}
		})
	}
	if _, err := New(&Options{}); err == nil {
		t.Fatal("New accepted zero options")
	}
}

func TestListenersDisabled(t *testing.T) {
	l := startTestLookup(t, func(o *Options) { o.HTTPAddress = "" })
	if l.HTTPAddr() != nil || l.TCPAddr() == nil {
		t.Fatalf("TCPAddr %v, HTTPAddr %v", l.TCPAddr(), l.HTTPAddr())
	}
	// With no HTTP listener IDENTIFY reports http_port 0.
	c := dialV1(t, l.TCPAddr())
	if reply := c.identify(testPeer("a", 4150)); !strings.Contains(reply, `"http_port":0,`) {
		t.Fatalf("IDENTIFY reply %s", reply)
	}

	l = startTestLookup(t, func(o *Options) { o.TCPAddress = "" })
	if l.TCPAddr() != nil || l.HTTPAddr() == nil {
		t.Fatalf("TCPAddr %v, HTTPAddr %v", l.TCPAddr(), l.HTTPAddr())
	}
	if resp := get(t, l, "/ping"); resp.body != "OK" {
		t.Fatalf("/ping = %q", resp.body)
	}
}

func TestLifecycle(t *testing.T) {
	before := runtime.NumGoroutine()
	l := newTestLookup(t, nil)
	if l.TCPAddr() != nil || l.HTTPAddr() != nil {
		t.Fatal("New opened listeners")
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	c := dialV1(t, l.TCPAddr())
	c.identify(testPeer("a", 4150))
	c.mustCommand("REGISTER orders")
	tcpAddr := l.TCPAddr()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	c.expectClosed()
	if err := l.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := l.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v, want ErrClosed", err)
	}
	if conn, err := net.DialTimeout("tcp", tcpAddr.String(), ioTimeout); err == nil {
		conn.Close()
		t.Fatal("the TCP listener still accepts")
	}
	testHTTPClient.CloseIdleConnections()
	waitFor(t, "the lookup's goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestShutdownBeforeStart(t *testing.T) {
	l := newTestLookup(t, nil)
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Shutdown: %v", err)
	}
}

// Shutdown returns ctx's error when HTTP requests outlast it, and cuts
// them off.
func TestShutdownContextExpires(t *testing.T) {
	l := newTestLookup(t, nil)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	// A CPU profile keeps its request running for a second.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.Get(httpURL(l, "/debug/pprof/profile?seconds=1")); err == nil {
			resp.Body.Close()
		}
	}()
	waitFor(t, "the profile request to start", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "pprof.Profile")
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if err := l.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a short context: %v", err)
	}
	if err := l.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown waiting: %v", err)
	}
	<-done
}
