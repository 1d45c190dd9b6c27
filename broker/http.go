package broker

// The HTTP API, answering as nsqd v1.3.0 does: same routes, status codes,
// error codes and bodies, because nsqadmin, nsq_stat, nsq_to_* and many
// scripts read them. Handlers return a value and an error; respond turns
// them into nsqd's "V1" responses:
//   - an *apiError becomes {"message":"CODE"} with its status;
//   - a string or []byte is written as is (net/http sniffs text/plain);
//   - nil is an empty 200;
//   - anything else is JSON.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"wren/protocol"
)

// apiError is an HTTP API failure: the status and the code sent as
// {"message":code}.
type apiError struct {
	status int
	code   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, e.code) }

func errAPI(status int, code string) *apiError { return &apiError{status: status, code: code} }

// apiHandler is an endpoint: it returns the response value or an error.
type apiHandler func(r *http.Request, ps httprouter.Params) (any, error)

// httpAPI serves one listener (plain HTTP or HTTPS) of a broker.
type httpAPI struct {
	b       *Broker
	isHTTPS bool
	router  *httprouter.Router
}

// newHTTPHandler returns the handler for the broker's HTTP listener, or
// for its HTTPS listener when isHTTPS is true.
func newHTTPHandler(b *Broker, isHTTPS bool) http.Handler {
	s := &httpAPI{b: b, isHTTPS: isHTTPS, router: httprouter.New()}
	r := s.router
	r.HandleMethodNotAllowed = true
	r.NotFound = asHandler(s.v1(func(*http.Request, httprouter.Params) (any, error) {
		return nil, errAPI(http.StatusNotFound, "NOT_FOUND")
	}, true))
	r.MethodNotAllowed = asHandler(s.v1(func(*http.Request, httprouter.Params) (any, error) {
		return nil, errAPI(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	}, true))
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.b.logger.Error("panic in HTTP handler", "path", req.URL.Path, "panic", v, "stack", string(debug.Stack()))
		respond(w, nil, errAPI(http.StatusInternalServerError, "INTERNAL_ERROR"))
	}

	// Like nsqd, every route but /pub and /mpub is logged.
	const logged, quiet = true, false
	r.GET("/ping", s.plainText(s.ping))
	r.GET("/info", s.v1(s.info, logged))
	r.POST("/pub", s.v1(s.pub, quiet))
	r.POST("/mpub", s.v1(s.mpub, quiet))
	r.GET("/stats", s.v1(s.stats, logged))

	r.POST("/topic/create", s.v1(s.createTopic, logged))
	r.POST("/topic/delete", s.v1(s.deleteTopic, logged))
	r.POST("/topic/empty", s.v1(s.emptyTopic, logged))
	r.POST("/topic/pause", s.v1(s.pauseTopic(true), logged))
	r.POST("/topic/unpause", s.v1(s.pauseTopic(false), logged))
	r.POST("/channel/create", s.v1(s.createChannel, logged))
	r.POST("/channel/delete", s.v1(s.deleteChannel, logged))
	r.POST("/channel/empty", s.v1(s.emptyChannel, logged))
	r.POST("/channel/pause", s.v1(s.pauseChannel(true), logged))
	r.POST("/channel/unpause", s.v1(s.pauseChannel(false), logged))
	r.GET("/config/:opt", s.v1(s.getConfig, logged))
	r.PUT("/config/:opt", s.v1(s.putConfig, logged))

	r.HandlerFunc(http.MethodGet, "/debug/pprof/", pprof.Index)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/cmdline", pprof.Cmdline)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc(http.MethodPost, "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/profile", pprof.Profile)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/trace", pprof.Trace)
	for _, name := range []string{"heap", "goroutine", "block", "mutex", "threadcreate", "allocs"} {
		r.Handler(http.MethodGet, "/debug/pprof/"+name, pprof.Handler(name))
	}
	r.PUT("/debug/setblockrate", s.plainText(setBlockRate))
	r.POST("/debug/freememory", s.plainText(freeMemory))
	return s
}

func (s *httpAPI) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("X-NSQ-Content-Type", "nsq; version=1.0")
	if !s.isHTTPS && s.b.opts.TLSRequired == TLSRequiredEverywhere {
		// nsqd writes this body by hand, spaces included; NSQ's own HTTP
		// client (nsqadmin, nsq_stat, nsq_to_*) reads https_port from it
		// to retry over HTTPS.
		port := 0
		if a, ok := s.b.HTTPSAddr().(*net.TCPAddr); ok {
			port = a.Port
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"message": "TLS_REQUIRED", "https_port": %d}`, port)
		return
	}
	s.router.ServeHTTP(w, req)
}

// asHandler makes a router handle a plain http.Handler, for the router's
// NotFound and MethodNotAllowed.
func asHandler(h httprouter.Handle) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { h(w, req, nil) })
}

// v1 adapts an apiHandler to the router with nsqd's V1 responses, logging
// the request when logged is set.
func (s *httpAPI) v1(h apiHandler, logged bool) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		start := time.Now()
		data, err := h(req, ps)
		respond(w, data, err)
		if logged {
			s.logRequest(req, err, start)
		}
	}
}

func (s *httpAPI) logRequest(req *http.Request, err error, start time.Time) {
	status := http.StatusOK
	var ae *apiError
	if errors.As(err, &ae) {
		status = ae.status
	}
	s.b.logger.Info("http request", "status", status, "method", req.Method,
		"uri", req.URL.RequestURI(), "remote", req.RemoteAddr, "elapsed", time.Since(start))
}

// respond writes data, or err as {"message":"CODE"}, as nsqd's V1 API does.
func respond(w http.ResponseWriter, data any, err error) {
	status := http.StatusOK
	var body []byte
	isJSON := false
	if err != nil {
		status, body = errorBody(err)
		isJSON = true
	} else {
		switch d := data.(type) {
		case nil:
		case string:
			body = []byte(d)
		case []byte:
			body = d
		default:
			isJSON = true
			var merr error
			if body, merr = json.Marshal(d); merr != nil {
				status, body = errorBody(merr)
			}
		}
	}
	if isJSON {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// errorBody returns the status and {"message":...} body for err. Errors
// that are not *apiError are internal: 500 with their text, as nsqd does.
func errorBody(err error) (int, []byte) {
	status, msg := http.StatusInternalServerError, err.Error()
	var ae *apiError
	if errors.As(err, &ae) {
		status, msg = ae.status, ae.code
	}
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	return status, body
}

// plainText adapts a handler whose result and error are written as plain
// text (nsqd's /ping and /debug endpoints).
func (s *httpAPI) plainText(h apiHandler) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		start := time.Now()
		data, err := h(req, ps)
		status := http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
			var ae *apiError
			if errors.As(err, &ae) {
				status, data = ae.status, ae.code
			} else {
				data = err.Error()
			}
		}
		w.WriteHeader(status)
		switch d := data.(type) {
		case string:
			_, _ = io.WriteString(w, d)
		case []byte:
			_, _ = w.Write(d)
		}
		s.logRequest(req, err, start)
	}
}

func (s *httpAPI) ping(*http.Request, httprouter.Params) (any, error) {
	health := s.b.Health()
	if health != "OK" {
		return nil, errAPI(http.StatusInternalServerError, health)
	}
	return health, nil
}

// infoResponse is GET /info. Durations are in nanoseconds.
type infoResponse struct {
	Version                string        `json:"version"`
	BroadcastAddress       string        `json:"broadcast_address"`
	Hostname               string        `json:"hostname"`
	HTTPPort               int           `json:"http_port"`
	TCPPort                int           `json:"tcp_port"`
	StartTime              int64         `json:"start_time"`
	MaxHeartbeatInterval   time.Duration `json:"max_heartbeat_interval"`
	MaxOutputBufferSize    int64         `json:"max_output_buffer_size"`
	MaxOutputBufferTimeout time.Duration `json:"max_output_buffer_timeout"`
	MaxDeflateLevel        int           `json:"max_deflate_level"`
	TopologyZone           string        `json:"topology_zone"`
	TopologyRegion         string        `json:"topology_region"`
}

func (s *httpAPI) info(*http.Request, httprouter.Params) (any, error) {
	hostname, err := os.Hostname()
	if err != nil {
		return nil, errAPI(http.StatusInternalServerError, err.Error())
	}
	o := s.b.opts
	return infoResponse{
		Version:                protocol.NSQVersion,
		BroadcastAddress:       o.BroadcastAddress,
		Hostname:               hostname,
		HTTPPort:               tcpPort(s.b.HTTPAddr()),
		TCPPort:                tcpPort(s.b.TCPAddr()),
		StartTime:              s.b.startTime.Unix(),
		MaxHeartbeatInterval:   o.MaxHeartbeatInterval,
		MaxOutputBufferSize:    o.MaxOutputBufferSize,
		MaxOutputBufferTimeout: o.MaxOutputBufferTimeout,
		MaxDeflateLevel:        o.MaxDeflateLevel,
		TopologyZone:           o.TopologyZone,
		TopologyRegion:         o.TopologyRegion,
	}, nil
}

// tcpPort is the port of a TCP address; -1 for a unix socket (or none).
func tcpPort(a net.Addr) int {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.Port
	}
	return -1
}

// query parses the request's query string; nsqd answers a malformed one
// with INVALID_REQUEST.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errAPI(http.StatusBadRequest, "INVALID_REQUEST")
	}
	return q, nil
}

// first returns the first value of key and whether key was given at all
// (an empty value counts as given).
func first(q url.Values, key string) (string, bool) {
	v, ok := q[key]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// pubTopicName is the topic argument of /pub, /mpub and /topic/create.
func pubTopicName(q url.Values) (string, error) {
	name, ok := first(q, "topic")
	if !ok {
		return "", errAPI(http.StatusBadRequest, "MISSING_ARG_TOPIC")
	}
	if !protocol.IsValidTopicName(name) {
		return "", errAPI(http.StatusBadRequest, "INVALID_TOPIC")
	}
	return name, nil
}

// publish creates the topic if needed and queues bodies on it. Any failure
// is 503 EXITING, as in nsqd.
func (s *httpAPI) publish(name string, bodies [][]byte, delay time.Duration) error {
	t, err := s.b.Topic(name)
	if err != nil {
		return errAPI(http.StatusServiceUnavailable, "EXITING")
	}
	if len(bodies) == 0 {
		return nil
	}
	if err := t.Publish(bodies, delay); err != nil {
		s.b.logger.Error("http publish failed", "topic", name, "err", err)
		return errAPI(http.StatusServiceUnavailable, "EXITING")
	}
	return nil
}

// pub is POST /pub?topic=T[&defer=ms] with the message as the body. The
// checks run in nsqd's order: size, emptiness, topic, defer.
func (s *httpAPI) pub(r *http.Request, _ httprouter.Params) (any, error) {
	maxSize := s.b.opts.MaxMsgSize
	if r.ContentLength > maxSize {
		return nil, errAPI(http.StatusRequestEntityTooLarge, "MSG_TOO_BIG")
	}
	// One byte more than allowed tells a too-big body from one that fits.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSize+1))
	if err != nil {
		return nil, errAPI(http.StatusInternalServerError, "INTERNAL_ERROR")
	}
	if int64(len(body)) > maxSize {
		return nil, errAPI(http.StatusRequestEntityTooLarge, "MSG_TOO_BIG")
	}
	if len(body) == 0 {
		return nil, errAPI(http.StatusBadRequest, "MSG_EMPTY")
	}
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	name, err := pubTopicName(q)
	if err != nil {
		return nil, err
	}
	var delay time.Duration
	if ds, ok := first(q, "defer"); ok {
		ms, err := strconv.ParseInt(ds, 10, 64)
		// Compare in milliseconds so a huge value cannot overflow.
		if err != nil || ms < 0 || ms > s.b.opts.MaxReqTimeout.Milliseconds() {
			return nil, errAPI(http.StatusBadRequest, "INVALID_DEFER")
		}
		delay = time.Duration(ms) * time.Millisecond
	}
	if err := s.publish(name, [][]byte{body}, delay); err != nil {
		return nil, err
	}
	return "OK", nil
}

// boolParam reads a query flag as nsqd does: "true"/"1" and "false"/"0";
// recognized reports whether the value was one of those.
func boolParam(v string) (value, recognized bool) {
	switch v {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

// mpub is POST /mpub?topic=T[&binary=true]: messages separated by "\n"
// (empty lines dropped), or in binary mode the MPUB layout without its
// outer size.
func (s *httpAPI) mpub(r *http.Request, _ httprouter.Params) (any, error) {
	maxBody, maxMsg := s.b.opts.MaxBodySize, s.b.opts.MaxMsgSize
	if r.ContentLength > maxBody {
		return nil, errAPI(http.StatusRequestEntityTooLarge, "BODY_TOO_BIG")
	}
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	name, err := pubTopicName(q)
	if err != nil {
		return nil, err
	}
	binaryMode := false
	if v, ok := first(q, "binary"); ok {
		var recognized bool
		// nsqd takes any other value as true.
		if binaryMode, recognized = boolParam(v); !recognized {
			binaryMode = true
			s.b.logger.Warn("deprecated value used for /mpub binary param", "value", v)
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, errAPI(http.StatusInternalServerError, "INTERNAL_ERROR")
	}
	var bodies [][]byte
	if binaryMode {
		if int64(len(body)) > maxBody {
			return nil, errAPI(http.StatusRequestEntityTooLarge, "BODY_TOO_BIG")
		}
		if bodies, err = parseBinaryMPUB(body, maxMsg, maxBody); err != nil {
			return nil, err
		}
	} else if bodies, err = splitTextMPUB(body, maxMsg, maxBody); err != nil {
		return nil, err
	}
	if err := s.publish(name, bodies, 0); err != nil {
		return nil, err
	}
	return "OK", nil
}

// parseBinaryMPUB parses a binary /mpub body. Errors are 413 with the TCP
// error code less its "E_" (BAD_BODY, BAD_MESSAGE), as in nsqd. nsqd reads
// only the messages the count announces and ignores any bytes after them,
// so this does too.
func parseBinaryMPUB(body []byte, maxMsg, maxBody int64) ([][]byte, error) {
	bodies, perr := protocol.ParseMPUB(body, maxMsg, maxBody)
	if perr != nil && perr.Code == protocol.CodeBadBody {
		if n := mpubLength(body); n > 0 && n < len(body) {
			bodies, perr = protocol.ParseMPUB(body[:n], maxMsg, maxBody)
		}
	}
	if perr != nil {
		code := perr.Code
		if len(code) > 2 && code[:2] == "E_" {
			code = code[2:]
		}
		return nil, errAPI(http.StatusRequestEntityTooLarge, code)
	}
	return bodies, nil
}

// mpubLength is the length of the well-formed MPUB body at the start of b,
// or 0 when there is none.
func mpubLength(b []byte) int {
	if len(b) < 4 {
		return 0
	}
	n := int64(int32(binary.BigEndian.Uint32(b)))
	off := int64(4)
	for i := int64(0); i < n; i++ {
		if off+4 > int64(len(b)) {
			return 0
		}
		size := int64(int32(binary.BigEndian.Uint32(b[off:])))
		if size <= 0 {
			return 0
		}
		off += 4 + size
		if off > int64(len(b)) {
			return 0
		}
	}
	return int(off)
}

// splitTextMPUB splits a text /mpub body (read up to maxBody+1 bytes) on
// "\n", dropping empty lines, with nsqd's errors: BODY_TOO_BIG once more
// than maxBody bytes were read, MSG_TOO_BIG for a line over maxMsg. As in
// nsqd, whichever comes first in the body wins.
func splitTextMPUB(body []byte, maxMsg, maxBody int64) ([][]byte, error) {
	var bodies [][]byte
	total := int64(0)
	for len(body) > 0 {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i+1], body[i+1:]
		} else {
			body = nil
		}
		total += int64(len(line))
		if total > maxBody {
			return nil, errAPI(http.StatusRequestEntityTooLarge, "BODY_TOO_BIG")
		}
		line = bytes.TrimSuffix(line, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		if int64(len(line)) > maxMsg {
			return nil, errAPI(http.StatusRequestEntityTooLarge, "MSG_TOO_BIG")
		}
		bodies = append(bodies, line)
	}
	return bodies, nil
}

// topicParam reads ?topic=. With validate it applies the name rules
// (INVALID_TOPIC); without, as nsqd does for delete and pause, an invalid
// name is simply not found.
func topicParam(r *http.Request, validate bool) (string, error) {
	q, err := query(r)
	if err != nil {
		return "", err
	}
	if validate {
		return pubTopicName(q)
	}
	name, ok := first(q, "topic")
	if !ok {
		return "", errAPI(http.StatusBadRequest, "MISSING_ARG_TOPIC")
	}
	return name, nil
}

// existingTopic is topicParam plus the topic, which must exist.
func (s *httpAPI) existingTopic(r *http.Request, validate bool) (*Topic, error) {
	name, err := topicParam(r, validate)
	if err != nil {
		return nil, err
	}
	t := s.b.ExistingTopic(name)
	if t == nil {
		return nil, errAPI(http.StatusNotFound, "TOPIC_NOT_FOUND")
	}
	return t, nil
}

// createTopic is POST /topic/create?topic=T.
func (s *httpAPI) createTopic(r *http.Request, _ httprouter.Params) (any, error) {
	name, err := topicParam(r, true)
	if err != nil {
		return nil, err
	}
	if _, err := s.b.Topic(name); err != nil {
		return nil, errAPI(http.StatusServiceUnavailable, "EXITING")
	}
	return nil, nil
}

// deleteTopic is POST /topic/delete?topic=T. nsqd does not validate the
// name here: an invalid one is simply not found.
func (s *httpAPI) deleteTopic(r *http.Request, _ httprouter.Params) (any, error) {
	name, err := topicParam(r, false)
	if err != nil {
		return nil, err
	}
	if !s.b.DeleteTopic(name) {
		return nil, errAPI(http.StatusNotFound, "TOPIC_NOT_FOUND")
	}
	return nil, nil
}

// emptyTopic is POST /topic/empty?topic=T.
func (s *httpAPI) emptyTopic(r *http.Request, _ httprouter.Params) (any, error) {
	t, err := s.existingTopic(r, true)
	if err != nil {
		return nil, err
	}
	if err := t.Empty(); err != nil {
		s.b.logger.Error("emptying topic", "topic", t.name, "err", err)
		return nil, errAPI(http.StatusInternalServerError, "INTERNAL_ERROR")
	}
	return nil, nil
}

// pauseTopic is POST /topic/pause and /topic/unpause. Topic.Pause and
// Unpause persist the metadata themselves.
func (s *httpAPI) pauseTopic(pause bool) apiHandler {
	return func(r *http.Request, _ httprouter.Params) (any, error) {
		t, err := s.existingTopic(r, false)
		if err != nil {
			return nil, err
		}
		if pause {
			t.Pause()
		} else {
			t.Unpause()
		}
		return nil, nil
	}
}

// channelArgs reads and checks topic and channel for the /channel/
// endpoints and returns the existing topic. Note the codes differ from
// /topic/*: INVALID_ARG_TOPIC, not INVALID_TOPIC.
func (s *httpAPI) channelArgs(r *http.Request) (*Topic, string, error) {
	q, err := query(r)
	if err != nil {
		return nil, "", err
	}
	topicName, ok := first(q, "topic")
	if !ok {
		return nil, "", errAPI(http.StatusBadRequest, "MISSING_ARG_TOPIC")
	}
	if !protocol.IsValidTopicName(topicName) {
		return nil, "", errAPI(http.StatusBadRequest, "INVALID_ARG_TOPIC")
	}
	channelName, ok := first(q, "channel")
	if !ok {
		return nil, "", errAPI(http.StatusBadRequest, "MISSING_ARG_CHANNEL")
	}
	if !protocol.IsValidChannelName(channelName) {
		return nil, "", errAPI(http.StatusBadRequest, "INVALID_ARG_CHANNEL")
	}
	t := s.b.ExistingTopic(topicName)
	if t == nil {
		return nil, "", errAPI(http.StatusNotFound, "TOPIC_NOT_FOUND")
	}
	return t, channelName, nil
}

// existingChannel is channelArgs plus the channel, which must exist.
func (s *httpAPI) existingChannel(r *http.Request) (*Channel, error) {
	t, name, err := s.channelArgs(r)
	if err != nil {
		return nil, err
	}
	ch := t.ExistingChannel(name)
	if ch == nil {
		return nil, errAPI(http.StatusNotFound, "CHANNEL_NOT_FOUND")
	}
	return ch, nil
}

// createChannel is POST /channel/create?topic=T&channel=C; the topic must
// exist.
func (s *httpAPI) createChannel(r *http.Request, _ httprouter.Params) (any, error) {
	t, name, err := s.channelArgs(r)
	if err != nil {
		return nil, err
	}
	if _, err := t.Channel(name); err != nil {
		return nil, errAPI(http.StatusServiceUnavailable, "EXITING")
	}
	return nil, nil
}

// deleteChannel is POST /channel/delete?topic=T&channel=C.
func (s *httpAPI) deleteChannel(r *http.Request, _ httprouter.Params) (any, error) {
	t, name, err := s.channelArgs(r)
	if err != nil {
		return nil, err
	}
	if !t.DeleteChannel(name) {
		return nil, errAPI(http.StatusNotFound, "CHANNEL_NOT_FOUND")
	}
	return nil, nil
}

// emptyChannel is POST /channel/empty?topic=T&channel=C.
func (s *httpAPI) emptyChannel(r *http.Request, _ httprouter.Params) (any, error) {
	ch, err := s.existingChannel(r)
	if err != nil {
		return nil, err
	}
	if err := ch.Empty(); err != nil {
		s.b.logger.Error("emptying channel", "topic", ch.topicName, "channel", ch.name, "err", err)
		return nil, errAPI(http.StatusInternalServerError, "INTERNAL_ERROR")
	}
	return nil, nil
}

// pauseChannel is POST /channel/pause and /channel/unpause. Channel.Pause
// and Unpause persist the metadata themselves.
func (s *httpAPI) pauseChannel(pause bool) apiHandler {
	return func(r *http.Request, _ httprouter.Params) (any, error) {
		ch, err := s.existingChannel(r)
		if err != nil {
			return nil, err
		}
		if pause {
			ch.Pause()
		} else {
			ch.Unpause()
		}
		return nil, nil
	}
}

// setBlockRate is PUT /debug/setblockrate?rate=N.
func setBlockRate(r *http.Request, _ httprouter.Params) (any, error) {
	rate, err := strconv.Atoi(r.FormValue("rate"))
	if err != nil {
		return nil, errAPI(http.StatusBadRequest, "invalid block rate : "+err.Error())
	}
	runtime.SetBlockProfileRate(rate)
	// nsqd v1.3.0 panics after doing the work here and answers 500; wren
	// answers 200 with an empty body.
	return "", nil
}

// freeMemory is POST /debug/freememory.
func freeMemory(*http.Request, httprouter.Params) (any, error) {
	debug.FreeOSMemory()
	return "", nil
}
