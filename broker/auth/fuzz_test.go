package auth

import (
	"testing"
)

// FuzzParseResponse checks that no auth server reply makes Parse panic,
// and that whatever it accepts is usable: a positive TTL, an expiry after
// the time received, and permission checks that do not panic.
func FuzzParseResponse(f *testing.F) {
	for _, seed := range []string{
		grantAll,
		`{"ttl":1,"authorizations":[]}`,
		`{"ttl":3600,"identity":"a","identity_url":"u","authorizations":[{"topic":"^t$","channels":["^c$",""],"permissions":["subscribe"]}]}`,
		`{"ttl":9223372036854775807,"authorizations":[{"topic":"","channels":[],"permissions":[]}]}`,
		`{"ttl":0}`,
		`{"ttl":-1}`,
		`{"ttl":60,"authorizations":[{"topic":"(","channels":[],"permissions":["publish"]}]}`,
		`{"ttl":60,"authorizations":[{"topic":".*","channels":["a"],"permissions":["admin"]}]}`,
		`{"ttl":60,"authorizations":null}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(seed), "topic", "channel")
	}
	f.Fuzz(func(t *testing.T, body []byte, topic, channel string) {
		s, err := Parse(body, testNow)
		if err != nil {
			if s != nil {
				t.Fatalf("Parse returned a state with error %v", err)
			}
			return
		}
		if s.TTL <= 0 || !s.Expires.After(testNow) || s.Expired(testNow) {
			t.Fatalf("accepted ttl %s expiring %s", s.TTL, s.Expires)
		}
		_ = s.Allowed(topic, channel)
		_ = s.Allowed(topic, "")
		_ = s.HasAuthorizations()
	})
}
