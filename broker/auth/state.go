// Package auth is the broker's client of NSQ auth servers: it asks a
// server what a connection's secret grants (over GET or POST, as nsqd
// does), checks the reply, and answers whether a topic and channel are
// allowed until the reply's TTL runs out.
//
// The package knows nothing of connections or the V2 protocol; the
// broker passes a Request in and gets a State back.
package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"
)

// The two permissions an authorization may grant.
const (
	PermissionSubscribe = "subscribe"
	PermissionPublish   = "publish"
)

// maxResponseSize bounds the reply read from an auth server.
const maxResponseSize = 16 << 20

// State is what an auth server granted one secret, valid until Expires.
// It is not changed after Parse returns it, so it may be shared.
type State struct {
	Identity       string
	IdentityURL    string
	Authorizations []Authorization
	TTL            time.Duration
	Expires        time.Time
}

// Authorization grants its permissions on the topics its Topic regex
// matches, for the channels one of its Channels regexes matches. The
// regexes are unanchored, as in nsqd.
type Authorization struct {
	Topic       string
	Channels    []string
	Permissions []string

	topic     *regexp.Regexp
	channels  []*regexp.Regexp
	subscribe bool
	publish   bool
}

// response is the auth server's JSON reply.
type response struct {
	TTL            int64  `json:"ttl"`
	Identity       string `json:"identity"`
	IdentityURL    string `json:"identity_url"`
	Authorizations []struct {
		Topic       string   `json:"topic"`
		Channels    []string `json:"channels"`
		Permissions []string `json:"permissions"`
	} `json:"authorizations"`
}

// ErrInvalidResponse is wrapped by every error Parse returns.
var ErrInvalidResponse = errors.New("invalid auth response")

// Parse reads an auth server's reply received at now. It is invalid, as
// in nsqd, unless it is JSON, its ttl is above 0, every regex compiles
// and every permission is "subscribe" or "publish". An empty list of
// authorizations is valid: the secret is known and grants nothing.
func Parse(body []byte, now time.Time) (*State, error) {
	var r response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidResponse, err)
	}
	state := &State{
		Identity:       r.Identity,
		IdentityURL:    r.IdentityURL,
		Authorizations: make([]Authorization, 0, len(r.Authorizations)),
	}
	for _, a := range r.Authorizations {
		authz := Authorization{Topic: a.Topic, Channels: a.Channels, Permissions: a.Permissions}
		for _, p := range a.Permissions {
			switch p {
			case PermissionSubscribe:
				authz.subscribe = true
			case PermissionPublish:
				authz.publish = true
			default:
				return nil, fmt.Errorf("%w: unknown permission %q", ErrInvalidResponse, p)
			}
		}
		var err error
		if authz.topic, err = regexp.Compile(a.Topic); err != nil {
			return nil, fmt.Errorf("%w: topic %q: %v", ErrInvalidResponse, a.Topic, err)
		}
		for _, c := range a.Channels {
			re, err := regexp.Compile(c)
			if err != nil {
				return nil, fmt.Errorf("%w: channel %q: %v", ErrInvalidResponse, c, err)
			}
			authz.channels = append(authz.channels, re)
		}
		state.Authorizations = append(state.Authorizations, authz)
	}
	if r.TTL <= 0 {
		return nil, fmt.Errorf("%w: ttl %d (must be > 0)", ErrInvalidResponse, r.TTL)
	}
	state.TTL = time.Duration(math.MaxInt64)
	if r.TTL < int64(math.MaxInt64/time.Second) {
		state.TTL = time.Duration(r.TTL) * time.Second
	}
	state.Expires = addClamped(now, state.TTL)
	return state, nil
}

// addClamped is t+d, at most the latest time a Duration can reach from t.
func addClamped(t time.Time, d time.Duration) time.Time {
	end := t.Add(d)
	if end.Before(t) {
		return t.Add(math.MaxInt64)
	}
	return end
}

// HasAuthorizations reports whether the server granted anything at all;
// a connection is authenticated only then, as in nsqd.
func (s *State) HasAuthorizations() bool {
	return s != nil && len(s.Authorizations) > 0
}

// Expired reports whether the state must be asked for again at now.
func (s *State) Expired(now time.Time) bool {
	return !now.Before(s.Expires)
}

// Allowed reports whether some authorization permits subscribing to
// channel of topic, or, when channel is "", publishing to topic.
func (s *State) Allowed(topic, channel string) bool {
	for i := range s.Authorizations {
		if s.Authorizations[i].Allows(topic, channel) {
			return true
		}
	}
	return false
}

// Allows reports whether a permits subscribing to channel of topic, or,
// when channel is "", publishing to topic. As in nsqd a publish needs a
// channel regex that matches "" too (such as "" or ".*").
func (a *Authorization) Allows(topic, channel string) bool {
	if channel == "" && !a.publish || channel != "" && !a.subscribe {
		return false
	}
	if a.topic == nil || !a.topic.MatchString(topic) {
		return false
	}
	for _, re := range a.channels {
		if re.MatchString(channel) {
			return true
		}
	}
	return false
}
