package protocol_test

import (
	"regexp"
	"strings"
	"testing"

	"wren/protocol"
)

// nsqdNameRegexp is nsqd's own rule; isValidName must agree with it on every
// name of at most 64 bytes.
var nsqdNameRegexp = regexp.MustCompile(`^[\.a-zA-Z0-9_-]+(#ephemeral)?$`)

func TestIsValidName(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  bool
	}{
		{"simple", "orders", true},
		{"every allowed class", "a.B_c-9", true},
		{"single dot", ".", true},
		{"64 bytes", strings.Repeat("a", 64), true},
		{"65 bytes", strings.Repeat("a", 65), false},
		{"empty", "", false},
		{"ephemeral suffix alone", "#ephemeral", false},
		{"ephemeral", "a#ephemeral", true},
		{"ephemeral 64 bytes in all", strings.Repeat("a", 54) + "#ephemeral", true},
		{"ephemeral 65 bytes in all", strings.Repeat("a", 55) + "#ephemeral", false},
		{"suffix twice", "a#ephemeral#ephemeral", false},
		{"suffix upper case", "a#EPHEMERAL", false},
		{"other suffix", "a#durable", false},
		{"hash inside", "a#b", false},
		{"space", "a b", false},
		{"trailing newline", "orders\n", false},
		{"tab", "a\tb", false},
		{"slash", "a/b", false},
		{"colon", "a:b", false},
		{"nul byte", "a\x00", false},
		{"unicode letter", "café", false},
		{"unicode only", "ü", false},
		{"unicode 64 bytes", strings.Repeat("é", 32), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := protocol.IsValidTopicName(tc.input); got != tc.want {
				t.Errorf("IsValidTopicName(%q) = %v, want %v", tc.input, got, tc.want)
			}
			if got := protocol.IsValidChannelName(tc.input); got != tc.want {
				t.Errorf("IsValidChannelName(%q) = %v, want %v", tc.input, got, tc.want)
			}
			nsqd := len(tc.input) <= protocol.MaxNameLength && nsqdNameRegexp.MatchString(tc.input)
			if nsqd != tc.want {
				t.Errorf("nsqd's rule says %v for %q, the table says %v", nsqd, tc.input, tc.want)
			}
		})
	}
}

func TestIsEphemeral(t *testing.T) {
	tests := []struct {
		input string
		want  bool
	}{
		{"a#ephemeral", true},
		{"#ephemeral", true},
		{"a", false},
		{"a#ephemeral.x", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.input, func(t *testing.T) {
			if got := protocol.IsEphemeral(tc.input); got != tc.want {
				t.Errorf("IsEphemeral(%q) = %v, want %v", tc.input, got, tc.want)
			}
		})
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"orders", "a#ephemeral", "#ephemeral", "a b", "café", strings.Repeat("x", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		want := len(name) <= protocol.MaxNameLength && nsqdNameRegexp.MatchString(name)
		if got := protocol.IsValidTopicName(name); got != want {
			t.Fatalf("IsValidTopicName(%q) = %v, nsqd's rule says %v", name, got, want)
		}
	})
}
