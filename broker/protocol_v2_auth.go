package broker

// AUTH and the authorization checks of SUB, PUB, MPUB and DPUB, as in
// nsqd: with --auth-http-address set, a connection must AUTH with a
// secret the auth server grants something to before it may subscribe or
// publish, and every SUB and publish is checked against what was granted,
// asking the server again once the grant's TTL has run out.
//
// The server is asked on the connection's own reader goroutine, bounded
// by --http-client-connect-timeout and --http-client-request-timeout and
// cancelled when the connection closes: a slow server delays only the
// connection that is waiting for it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"wren/broker/auth"
	"wren/protocol"
)

// clientAuth is a connection's authentication: the secret it sent and
// what the server granted it. Only the reader goroutine writes them;
// /stats reads state.
type clientAuth struct {
	secret string
	state  atomic.Pointer[auth.State]
}

// stats is what /stats reports: authed, auth_identity and
// auth_identity_url, as nsqd's ClientV2Stats.
func (a *clientAuth) stats() (authed bool, identity, identityURL string) {
	s := a.state.Load()
	if s == nil {
		return false, "", ""
	}
	return s.HasAuthorizations(), s.Identity, s.IdentityURL
}

// startAuthClient makes the auth servers' client when any is configured.
// https servers (and the https retry after a 403) are checked against
// --tls-root-ca-file when it is given, as in nsqd.
func (b *Broker) startAuthClient() error {
	o := b.opts
	if len(o.AuthHTTPAddresses) == 0 {
		return nil
	}
	method, err := auth.ParseMethod(o.AuthHTTPRequestMethod)
	if err != nil {
		return fmt.Errorf("--auth-http-request-method: %w", err)
	}
	tlsConfig := &tls.Config{MinVersion: uint16(o.TLSMinVersion)}
	if o.TLSRootCAFile != "" {
		if tlsConfig.RootCAs, err = readRootCAFile(o.TLSRootCAFile); err != nil {
			return err
		}
	}
	b.v2.auth = auth.NewClient(auth.Config{
		Addresses:      o.AuthHTTPAddresses,
		Method:         method,
		ConnectTimeout: o.HTTPClientConnectTimeout,
		RequestTimeout: o.HTTPClientRequestTimeout,
		TLSConfig:      tlsConfig,
	})
	return nil
}

func (v *v2Conn) auth(p [][]byte) ([]byte, *protocol.Error) {
	c := v.c
	if c.state.Load() != stateInit {
		return nil, protocol.NewError(protocol.CodeInvalid, "cannot AUTH in current state")
	}
	if len(p) != 0 {
		return nil, protocol.NewError(protocol.CodeInvalid, "AUTH invalid number of parameters")
	}
	body, perr := readBody(c, "AUTH", protocol.CodeBadBody, "body", v.cfg.maxBodySize)
	if perr != nil {
		return nil, perr
	}
	if c.auth.state.Load().HasAuthorizations() {
		return nil, protocol.NewError(protocol.CodeInvalid, "AUTH already set")
	}
	if v.cfg.auth == nil {
		return nil, protocol.NewError(protocol.CodeAuthDisabled, "AUTH disabled")
	}
	c.auth.secret = string(body)
	state, err := v.queryAuth()
	if err != nil {
		// The server's error is logged, never sent: the client may not
		// be trusted with it.
		c.logger.Warn("AUTH failed", "err", err)
		return nil, protocol.NewError(protocol.CodeAuthFailed, "AUTH failed").Wrap(err)
	}
	if !state.HasAuthorizations() {
		return nil, protocol.NewError(protocol.CodeUnauthorized, "AUTH no authorizations found")
	}
	resp, err := json.Marshal(authResponse{
		Identity:        state.Identity,
		IdentityURL:     state.IdentityURL,
		PermissionCount: len(state.Authorizations),
	})
	if err != nil {
		return nil, protocol.NewError(protocol.CodeAuthError, "AUTH error "+err.Error()).Wrap(err)
	}
	return resp, nil
}

// authResponse is AUTH's reply, in nsqd's field order.
type authResponse struct {
	Identity        string `json:"identity"`
	IdentityURL     string `json:"identity_url"`
	PermissionCount int    `json:"permission_count"`
}

// checkAuth is nsqd's CheckAuth: with auth enabled, cmd may act on topic
// (and channel, for SUB) only after an AUTH that was granted something,
// and only as far as the grant, asked for again once it has expired,
// allows.
func (v *v2Conn) checkAuth(cmd, topic, channel string) *protocol.Error {
	if v.cfg.auth == nil {
		return nil
	}
	c := v.c
	state := c.auth.state.Load()
	if !state.HasAuthorizations() {
		return protocol.Errorf(protocol.CodeAuthFirst, "AUTH required before %s", cmd)
	}
	if state.Expired(time.Now()) {
		var err error
		if state, err = v.queryAuth(); err != nil {
			c.logger.Warn("AUTH failed", "err", err)
			return protocol.NewError(protocol.CodeAuthFailed, "AUTH failed").Wrap(err)
		}
	}
	if !state.Allowed(topic, channel) {
		return protocol.Errorf(protocol.CodeUnauthorized, "AUTH failed for %s on %q %q", cmd, topic, channel)
	}
	return nil
}

// queryAuth asks the auth servers about the connection's secret and keeps
// the answer. It gives up when the connection closes.
func (v *v2Conn) queryAuth() (*auth.State, error) {
	c := v.c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer close(done)
	defer cancel()
	go func() {
		select {
		case <-c.exit:
			cancel()
		case <-done:
		}
	}()
	state, err := v.cfg.auth.Query(ctx, c.authRequest())
	if err != nil {
		return nil, err
	}
	c.auth.state.Store(state)
	return state, nil
}

// readRootCAFile reads --tls-root-ca-file: the CAs client certificates
// are checked against, and those of https auth servers.
func readRootCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --tls-root-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--tls-root-ca-file=%s holds no PEM certificates", path)
	}
	return pool, nil
}

// authRequest describes the connection to the auth server: its IP (none
// over a unix socket), whether it uses TLS, and the subject CN of the
// certificate it presented, if any. Called by the reader goroutine, which
// alone sets tlsState.
func (c *client) authRequest() auth.Request {
	r := auth.Request{Secret: c.auth.secret}
	if addr, ok := c.raw.RemoteAddr().(*net.TCPAddr); ok {
		r.RemoteIP = addr.IP.String()
	}
	if c.tlsState != nil {
		r.TLS = true
		if len(c.tlsState.PeerCertificates) > 0 {
			r.CommonName = c.tlsState.PeerCertificates[0].Subject.CommonName
		}
	}
	return r
}
