package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestParseValid(t *testing.T) {
	body := `{"ttl":3600,"identity":"alice","identity_url":"https://id.example/alice",
		"authorizations":[{"topic":"^orders$","channels":[".*"],"permissions":["subscribe","publish"]}]}`
	s, err := Parse([]byte(body), testNow)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.Identity != "alice" || s.IdentityURL != "https://id.example/alice" {
		t.Errorf("identity %q %q", s.Identity, s.IdentityURL)
	}
	if s.TTL != time.Hour || !s.Expires.Equal(testNow.Add(time.Hour)) {
		t.Errorf("ttl %s expires %s", s.TTL, s.Expires)
	}
	if !s.HasAuthorizations() || len(s.Authorizations) != 1 {
		t.Fatalf("authorizations %+v", s.Authorizations)
	}
}

func TestParseNoAuthorizations(t *testing.T) {
	s, err := Parse([]byte(`{"ttl":1,"authorizations":[]}`), testNow)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.HasAuthorizations() {
		t.Error("HasAuthorizations with none granted")
	}
	var none *State
	if none.HasAuthorizations() {
		t.Error("nil State HasAuthorizations")
	}
}

func TestParseInvalid(t *testing.T) {
	cases := []struct{ name, body, wantErr string }{
		{"not JSON", `<html>`, "invalid character"},
		{"empty", ``, "unexpected end"},
		{"ttl missing", `{"authorizations":[]}`, "ttl 0"},
		{"ttl zero", `{"ttl":0,"authorizations":[]}`, "ttl 0"},
		{"ttl negative", `{"ttl":-5}`, "ttl -5"},
		{"ttl fractional", `{"ttl":1.5}`, "ttl"},
		{"ttl string", `{"ttl":"60"}`, "ttl"},
		{"unknown permission", `{"ttl":60,"authorizations":[{"topic":".*","channels":[".*"],"permissions":["admin"]}]}`, `unknown permission "admin"`},
		{"bad topic regex", `{"ttl":60,"authorizations":[{"topic":"(","channels":[".*"],"permissions":["publish"]}]}`, `topic "("`},
		{"bad channel regex", `{"ttl":60,"authorizations":[{"topic":".*","channels":["[z-a]"],"permissions":["subscribe"]}]}`, `channel "[z-a]"`},
		{"authorizations not a list", `{"ttl":60,"authorizations":{}}`, "cannot unmarshal"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.body), testNow)
			if err == nil {
				t.Fatalf("Parse(%s) = %+v, want an error", tc.body, s)
			}
			if !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("error %v does not wrap ErrInvalidResponse", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseHugeTTL(t *testing.T) {
	s, err := Parse([]byte(`{"ttl":9223372036854775807,"authorizations":[]}`), testNow)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s.Expired(testNow.Add(100 * 365 * 24 * time.Hour)) {
		t.Errorf("a huge ttl expired within a century: expires %s", s.Expires)
	}
}

func TestExpired(t *testing.T) {
	s, err := Parse([]byte(`{"ttl":2,"authorizations":[]}`), testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, false}, {time.Second, false}, {2*time.Second - 1, false}, {2 * time.Second, true}, {time.Hour, true}} {
		if got := s.Expired(testNow.Add(tc.at)); got != tc.want {
			t.Errorf("Expired at +%s = %v, want %v", tc.at, got, tc.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	body := `{"ttl":60,"authorizations":[
		{"topic":"orders","channels":["^billing$","audit"],"permissions":["subscribe"]},
		{"topic":"^events$","channels":[".*"],"permissions":["publish"]},
		{"topic":"^logs$","channels":["x"],"permissions":["publish","subscribe"]},
		{"topic":"^nochan$","channels":[],"permissions":["publish","subscribe"]}]}`
	s, err := Parse([]byte(body), testNow)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		topic, channel string
		want           bool
	}{
		{"orders", "billing", true},
		{"orders", "billing2", false},       // ^billing$ is anchored by the server
		{"orders", "old_audit_2", true},     // unanchored: audit anywhere
		{"my_orders_v2", "billing", true},   // unanchored topic
		{"orders", "", false},               // subscribe only: no publish
		{"events", "", true},                // publish, and ".*" matches ""
		{"events", "c", false},              // publish only: no subscribe
		{"events2", "", false},              // ^events$
		{"logs", "x", true},                 // subscribe to x
		{"logs", "", false},                 // publish needs a channel regex matching "": "x" does not
		{"nochan", "", false},               // no channels: nothing at all
		{"nochan", "c", false},              //
		{"unrelated", "billing", false},     //
		{"orders#ephemeral", "audit", true}, // the names are matched as they are
	}
	for _, tc := range cases {
		if got := s.Allowed(tc.topic, tc.channel); got != tc.want {
			t.Errorf("Allowed(%q, %q) = %v, want %v", tc.topic, tc.channel, got, tc.want)
		}
	}
}
