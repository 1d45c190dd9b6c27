package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Method is how the broker asks an auth server: GET with the request in
// the query string (nsqd v1.3.0), or POST with it in a JSON body (NSQ
// master), which keeps the secret out of the server's access logs.
type Method string

const (
	MethodGet  Method = "get"
	MethodPost Method = "post"
)

// ParseMethod reads --auth-http-request-method: exactly "get" or "post".
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case MethodGet, MethodPost:
		return m, nil
	}
	return "", fmt.Errorf("want get or post, got %q", s)
}

// Request is what the broker tells an auth server about a connection.
type Request struct {
	RemoteIP   string // "" for a unix socket, as in nsqd
	TLS        bool
	CommonName string // the client certificate's subject CN, if any
	Secret     string
}

// Values are the request's fields as nsqd names them.
func (r Request) Values() url.Values {
	return url.Values{
		"remote_ip":   {r.RemoteIP},
		"tls":         {strconv.FormatBool(r.TLS)},
		"secret":      {r.Secret},
		"common_name": {r.CommonName},
	}
}

// Config configures a Client.
type Config struct {
	// Addresses are the auth servers: host:port (asked at
	// http://host:port/auth) or a whole URL containing "://".
	Addresses []string
	// Method is MethodGet when empty.
	Method Method
	// ConnectTimeout bounds the TCP connect and the TLS handshake;
	// RequestTimeout the whole request, reply included.
	ConnectTimeout time.Duration
	RequestTimeout time.Duration
	// TLSConfig is used for https addresses and for the retry over
	// https that a 403 asks for; nil means the system's roots.
	TLSConfig *tls.Config
}

// Client asks auth servers. It is safe for concurrent use.
type Client struct {
	endpoints []string
	method    Method
	http      *http.Client
	// start picks the server tried first among n; a random one, so that
	// brokers spread their load over the servers.
	start func(n int) int
}

// NewClient returns a client for cfg; it opens nothing until asked.
func NewClient(cfg Config) *Client {
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout}
	transport := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSClientConfig:       cfg.TLSConfig,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ResponseHeaderTimeout: cfg.RequestTimeout,
		// A connection asks once at AUTH and again when the TTL runs
		// out: too seldom to keep sockets open for, and none are left
		// behind when the broker stops.
		DisableKeepAlives: true,
	}
	method := cfg.Method
	if method == "" {
		method = MethodGet
	}
	endpoints := make([]string, len(cfg.Addresses))
	for i, addr := range cfg.Addresses {
		endpoints[i] = Endpoint(addr)
	}
	return &Client{
		endpoints: endpoints,
		method:    method,
		http:      &http.Client{Transport: transport, Timeout: cfg.RequestTimeout},
		start:     rand.IntN,
	}
}

// Endpoint is the URL asked for an --auth-http-address: the address
// itself when it contains "://", else http://addr/auth.
func Endpoint(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr + "/auth"
}

// Query asks the servers in turn, starting at a random one, until one
// gives a valid reply, and returns it. The error names every server that
// failed and why; it never contains the secret.
func (c *Client) Query(ctx context.Context, r Request) (*State, error) {
	n := len(c.endpoints)
	if n == 0 {
		return nil, errors.New("no auth server configured")
	}
	var failed error // one line for the logs: "server: why; server: why"
	start := c.start(n)
	for i := range n {
		endpoint := c.endpoints[(start+i)%n]
		state, err := c.queryOne(ctx, endpoint, r)
		if err == nil {
			return state, nil
		}
		err = fmt.Errorf("auth server %s: %w", RedactURL(endpoint), err)
		if failed == nil {
			failed = err
		} else {
			failed = fmt.Errorf("%w; %w", failed, err)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, failed
}

// queryOne asks one server; a 403 is asked again over https at the port
// its reply names, as nsqd's HTTP client does.
func (c *Client) queryOne(ctx context.Context, endpoint string, r Request) (*State, error) {
	for {
		req, err := NewHTTPRequest(ctx, c.method, endpoint, r)
		if err != nil {
			return nil, err
		}
		status, body, err := c.do(req)
		if err != nil {
			return nil, err
		}
		if status == http.StatusForbidden && !strings.HasPrefix(endpoint, "https") {
			if endpoint, err = httpsEndpoint(endpoint, body); err != nil {
				return nil, fmt.Errorf("got 403, and no https port in its body: %w", err)
			}
			continue
		}
		if status != http.StatusOK {
			return nil, fmt.Errorf("got response %d %s %q", status, http.StatusText(status), truncate(body, 256))
		}
		return Parse(body, time.Now())
	}
}

// do sends req and reads the reply. A failed request's error names the
// URL without the secret.
func (c *Client) do(req *http.Request) (int, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return 0, nil, fmt.Errorf("%s %s: %w", uerr.Op, RedactURL(uerr.URL), uerr.Err)
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the response: %w", err)
	}
	if len(body) > maxResponseSize {
		return 0, nil, fmt.Errorf("response larger than %d bytes", maxResponseSize)
	}
	return resp.StatusCode, body, nil
}

// NewHTTPRequest builds the request asking endpoint about r: a GET with
// r's values in the query string, or a POST of the same values as a JSON
// object of arrays, keys sorted (encoding/json sorts map keys), as NSQ
// master sends them.
func NewHTTPRequest(ctx context.Context, method Method, endpoint string, r Request) (*http.Request, error) {
	values := r.Values()
	var req *http.Request
	var err error
	switch method {
	case MethodPost:
		body, merr := json.Marshal(values)
		if merr != nil {
			return nil, merr
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	default:
		sep := "?"
		if strings.Contains(endpoint, "?") {
			sep = "&"
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, endpoint+sep+values.Encode(), nil)
	}
	if err != nil {
		return nil, fmt.Errorf("building the request for %s: %w", RedactURL(endpoint), redactError(err))
	}
	req.Header.Set("Accept", "application/vnd.nsq; version=1.0")
	return req, nil
}

// redactError drops the URL a url.Error carries.
func redactError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// RedactURL is raw with the value of any secret query parameter replaced,
// for logs and errors. A URL that does not parse is cut at its query.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexByte(raw, '?'); i >= 0 {
			return raw[:i] + "?REDACTED"
		}
		return raw
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	q := u.Query()
	if q.Has("secret") {
		q.Set("secret", "REDACTED")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// httpsEndpoint is endpoint over https at the port a 403 reply names in
// {"https_port":N}.
func httpsEndpoint(endpoint string, body []byte) (string, error) {
	var forbidden struct {
		HTTPSPort int `json:"https_port"`
	}
	if err := json.Unmarshal(body, &forbidden); err != nil {
		return "", err
	}
	if forbidden.HTTPSPort <= 0 || forbidden.HTTPSPort > 65535 {
		return "", fmt.Errorf("https_port %d out of range", forbidden.HTTPSPort)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", redactError(err)
	}
	u.Scheme = "https"
	u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(forbidden.HTTPSPort))
	return u.String(), nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
