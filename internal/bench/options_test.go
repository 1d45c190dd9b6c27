package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	publish := func(change func(*PublishOptions)) func() error {
		return func() error {
			o := NewPublishOptions()
			o.Topic = "t"
			change(o)
			return o.Validate()
		}
	}
	consume := func(change func(*ConsumeOptions)) func() error {
		return func() error {
			o := NewConsumeOptions()
			o.Topic, o.Channel = "t", "c"
			change(o)
			return o.Validate()
		}
	}
	latency := func(change func(*LatencyOptions)) func() error {
		return func() error {
			o := NewLatencyOptions()
			o.Topic, o.Channel = "t", "c"
			change(o)
			return o.Validate()
		}
	}
	tests := []struct {
		name     string
		validate func() error
		want     string // "" for valid; else every line expected, joined by "\n"
	}{
		{"publish defaults", publish(func(*PublishOptions) {}), ""},
		{"publish no topic", publish(func(o *PublishOptions) { o.Topic = "" }), "--topic is required"},
		{"publish bad topic", publish(func(o *PublishOptions) { o.Topic = "a b" }), `--topic "a b" is not a valid topic name`},
		{"publish zero batch", publish(func(o *PublishOptions) { o.Batch = 0 }), "--batch must be >= 1, got 0"},
		{"publish zero size", publish(func(o *PublishOptions) { o.Size = 0 }), "--size must be >= 1, got 0"},
		{"publish negative rate", publish(func(o *PublishOptions) { o.Rate = -1 }), "--rate must be >= 0, got -1"},
		{"publish unbounded", publish(func(o *PublishOptions) { o.Duration = 0; o.Count = 10 }), "--duration must be > 0, got 0s"},
		{"publish several", publish(func(o *PublishOptions) { o.Connections = 0; o.Count = -1; o.Addr = "" }),
			"--addr must not be empty\n--connections must be >= 1, got 0\n--count must be >= 0, got -1"},
		{"consume defaults", consume(func(*ConsumeOptions) {}), ""},
		{"consume no channel", consume(func(o *ConsumeOptions) { o.Channel = "" }), "--channel is required"},
		{"consume bad channel", consume(func(o *ConsumeOptions) { o.Channel = "c/d" }), `--channel "c/d" is not a valid channel name`},
		{"consume zero rdy", consume(func(o *ConsumeOptions) { o.RDY = 0 }), "--rdy must be >= 1, got 0"},
		{"latency defaults", latency(func(*LatencyOptions) {}), ""},
		{"latency flat out", latency(func(o *LatencyOptions) { o.Rate = 0 }), "--rate must be >= 1, got 0"},
		{"latency small body", latency(func(o *LatencyOptions) { o.Size = 15 }), "--size must be >= 16, got 15"},
		{"sink empty address", func() error { return (&SinkOptions{}).Validate() }, "--tcp-address must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestProgressWriterOnlyOnTerminals(t *testing.T) {
	if ProgressWriter(nil) != nil {
		t.Error("ProgressWriter(nil) is not nil")
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ProgressWriter(f) != nil {
		t.Error("ProgressWriter of a regular file is not nil")
	}
}

func TestWriteTextAndJSON(t *testing.T) {
	r := &Result{Mode: "consume", Messages: 3000, Bytes: 600000, Elapsed: 1500e6}
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := "consume: 3000 messages in 1.50s, 2000 msg/s, 0.40 MB/s; latency n/a\n"; text.String() != want {
		t.Errorf("WriteText = %q, want %q", text.String(), want)
	}
	r.Latency = &LatencySummary{Measures: "publish→OK", Samples: 3, P50: 1500, P99: 2000, P999: 2000, Max: 2000}
	var js strings.Builder
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	want := `{"mode":"consume","messages":3000,"bytes":600000,"seconds":1.5,"msgs_per_sec":2000,"mb_per_sec":0.4,` +
		`"latency":{"measures":"publish→OK","samples":3,"p50_us":1.5,"p99_us":2,"p99_9_us":2,"max_us":2}}` + "\n"
	if js.String() != want {
		t.Errorf("WriteJSON = %s, want %s", js.String(), want)
	}
}
