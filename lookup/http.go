package lookup

// The HTTP API, answering as nsqlookupd v1.3.0 does: same routes, status
// codes and bodies, because nsqd, nsqadmin, go-nsq consumers and scripts
// read them. Handlers return a value and an error; respond turns them into
// nsqlookupd's "V1" responses:
//   - an *apiError becomes {"message":"CODE"} with its status;
//   - nil is an empty 200 with no Content-Type;
//   - anything else is JSON.
//
// Every V1 response, errors and 404/405 included, carries
// X-NSQ-Content-Type; /ping and /debug/pprof do not, as in nsqlookupd.
// Lists that nsqlookupd returns in map order are sorted here.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"runtime/debug"
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
type apiHandler func(r *http.Request) (any, error)

// httpAPI serves the registry over HTTP. It needs only the registry.
type httpAPI struct {
	registry *registry
	logger   *slog.Logger
}

func newHTTPHandler(reg *registry, logger *slog.Logger) http.Handler {
	s := &httpAPI{registry: reg, logger: logger}
	r := httprouter.New()
	r.HandleMethodNotAllowed = true
	r.NotFound = s.asHandler(s.v1(func(*http.Request) (any, error) {
		return nil, errAPI(http.StatusNotFound, "NOT_FOUND")
	}))
	r.MethodNotAllowed = s.asHandler(s.v1(func(*http.Request) (any, error) {
		return nil, errAPI(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	}))
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.logger.Error("panic in lookup HTTP handler", "path", req.URL.Path, "panic", v, "stack", string(debug.Stack()))
		s.v1(func(*http.Request) (any, error) {
			return nil, errAPI(http.StatusInternalServerError, "INTERNAL_ERROR")
		})(w, req, nil)
	}

	r.GET("/ping", s.ping)
	r.GET("/info", s.v1(s.info))
	r.GET("/debug", s.v1(s.debug))
	r.GET("/lookup", s.v1(s.lookup))
	r.GET("/topics", s.v1(s.topics))
	r.GET("/channels", s.v1(s.channels))
	r.GET("/nodes", s.v1(s.nodes))

	r.POST("/topic/create", s.v1(s.createTopic))
	r.POST("/topic/delete", s.v1(s.deleteTopic))
	r.POST("/channel/create", s.v1(s.createChannel))
	r.POST("/channel/delete", s.v1(s.deleteChannel))
	r.POST("/topic/tombstone", s.v1(s.tombstoneTopicProducer))

	// nsqlookupd's set: no trailing slash on the index (/debug/pprof/
	// redirects to it), and no allocs, mutex or trace.
	r.HandlerFunc(http.MethodGet, "/debug/pprof", pprof.Index)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/cmdline", pprof.Cmdline)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc(http.MethodPost, "/debug/pprof/symbol", pprof.Symbol)
	r.HandlerFunc(http.MethodGet, "/debug/pprof/profile", pprof.Profile)
	for _, name := range []string{"heap", "goroutine", "block", "threadcreate"} {
		r.Handler(http.MethodGet, "/debug/pprof/"+name, pprof.Handler(name))
	}
	return r
}

// asHandler makes a router handle a plain http.Handler, for the router's
// NotFound and MethodNotAllowed.
func (s *httpAPI) asHandler(h httprouter.Handle) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { h(w, req, nil) })
}

// v1 adapts an apiHandler to the router with nsqlookupd's V1 responses and
// logs the request.
func (s *httpAPI) v1(h apiHandler) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
		start := time.Now()
		data, err := h(req)
		status := respond(w, data, err)
		s.logRequest(req, status, start)
	}
}

func (s *httpAPI) logRequest(req *http.Request, status int, start time.Time) {
	s.logger.Info("lookup http request", "status", status, "method", req.Method,
		"uri", req.URL.RequestURI(), "remote", req.RemoteAddr, "elapsed", time.Since(start))
}

// respond writes data, or err as {"message":"CODE"}, and returns the
// status it wrote.
func respond(w http.ResponseWriter, data any, err error) int {
	status := http.StatusOK
	var body []byte
	if err == nil && data != nil {
		if body, err = json.Marshal(data); err != nil {
			err = errAPI(http.StatusInternalServerError, err.Error())
		}
	}
	if err != nil {
		status = http.StatusInternalServerError
		code := err.Error()
		var ae *apiError
		if errors.As(err, &ae) {
			status, code = ae.status, ae.code
		}
		body, _ = json.Marshal(struct {
			Message string `json:"message"`
		}{code})
	}
	if body != nil {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.Header().Set("X-NSQ-Content-Type", "nsq; version=1.0")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return status
}

// ping is GET /ping: plain "OK", without nsqlookupd's V1 header.
func (s *httpAPI) ping(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	start := time.Now()
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "OK")
	s.logRequest(req, http.StatusOK, start)
}

func (s *httpAPI) info(*http.Request) (any, error) {
	return struct {
		Version string `json:"version"`
	}{protocol.NSQVersion}, nil
}

// query parses the request's query string; nsqlookupd answers a malformed
// one with INVALID_REQUEST.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, errAPI(http.StatusBadRequest, "INVALID_REQUEST")
	}
	return q, nil
}

// arg returns the first value of key, or missing when key is absent (an
// empty value counts as given, as in nsqlookupd).
func arg(q url.Values, key, missing string) (string, error) {
	v, ok := q[key]
	if !ok || len(v) == 0 {
		return "", errAPI(http.StatusBadRequest, missing)
	}
	return v[0], nil
}

// topicArg is the unchecked ?topic= of the query endpoints.
func topicArg(r *http.Request) (string, error) {
	q, err := query(r)
	if err != nil {
		return "", err
	}
	return arg(q, "topic", "MISSING_ARG_TOPIC")
}

// topicChannelArgs are the checked ?topic=&channel= of /channel/create and
// /channel/delete, with nsqlookupd's error codes in its order.
func topicChannelArgs(r *http.Request) (topic, channel string, err error) {
	q, err := query(r)
	if err != nil {
		return "", "", err
	}
	if topic, err = arg(q, "topic", "MISSING_ARG_TOPIC"); err != nil {
		return "", "", err
	}
	if !protocol.IsValidTopicName(topic) {
		return "", "", errAPI(http.StatusBadRequest, "INVALID_ARG_TOPIC")
	}
	if channel, err = arg(q, "channel", "MISSING_ARG_CHANNEL"); err != nil {
		return "", "", err
	}
	if !protocol.IsValidChannelName(channel) {
		return "", "", errAPI(http.StatusBadRequest, "INVALID_ARG_CHANNEL")
	}
	return topic, channel, nil
}

// lookup is GET /lookup?topic=: the topic's channels and its active,
// untombstoned producers; 404 TOPIC_NOT_FOUND if it is not registered.
func (s *httpAPI) lookup(r *http.Request) (any, error) {
	topic, err := topicArg(r)
	if err != nil {
		return nil, err
	}
	channels, producers, found := s.registry.lookup(topic)
	if !found {
		return nil, errAPI(http.StatusNotFound, "TOPIC_NOT_FOUND")
	}
	return struct {
		Channels  []string   `json:"channels"`
		Producers []peerInfo `json:"producers"`
	}{channels, producers}, nil
}

func (s *httpAPI) topics(*http.Request) (any, error) {
	return struct {
		Topics []string `json:"topics"`
	}{s.registry.topics()}, nil
}

func (s *httpAPI) channels(r *http.Request) (any, error) {
	topic, err := topicArg(r)
	if err != nil {
		return nil, err
	}
	return struct {
		Channels []string `json:"channels"`
	}{s.registry.channels(topic)}, nil
}

func (s *httpAPI) nodes(*http.Request) (any, error) {
	return struct {
		Producers []nodeInfo `json:"producers"`
	}{s.registry.nodes()}, nil
}

func (s *httpAPI) debug(*http.Request) (any, error) {
	return s.registry.debug(), nil
}

func (s *httpAPI) createTopic(r *http.Request) (any, error) {
	topic, err := topicArg(r)
	if err != nil {
		return nil, err
	}
	if !protocol.IsValidTopicName(topic) {
		return nil, errAPI(http.StatusBadRequest, "INVALID_ARG_TOPIC")
	}
	s.registry.createTopic(topic)
	s.logger.Info("lookup topic created", "topic", topic)
	return nil, nil
}

// deleteTopic is POST /topic/delete: always 200, and unchecked, as in
// nsqlookupd (so topic=* deletes every topic).
func (s *httpAPI) deleteTopic(r *http.Request) (any, error) {
	topic, err := topicArg(r)
	if err != nil {
		return nil, err
	}
	for _, reg := range s.registry.deleteTopic(topic) {
		s.logger.Info("lookup registration deleted", "category", reg.category, "key", reg.key, "subkey", reg.subkey)
	}
	return nil, nil
}

func (s *httpAPI) createChannel(r *http.Request) (any, error) {
	topic, channel, err := topicChannelArgs(r)
	if err != nil {
		return nil, err
	}
	s.registry.createChannel(topic, channel)
	s.logger.Info("lookup channel created", "topic", topic, "channel", channel)
	return nil, nil
}

func (s *httpAPI) deleteChannel(r *http.Request) (any, error) {
	topic, channel, err := topicChannelArgs(r)
	if err != nil {
		return nil, err
	}
	if !s.registry.deleteChannel(topic, channel) {
		return nil, errAPI(http.StatusNotFound, "CHANNEL_NOT_FOUND")
	}
	s.logger.Info("lookup channel deleted", "topic", topic, "channel", channel)
	return nil, nil
}

// tombstoneTopicProducer is POST /topic/tombstone?topic=&node=host:httpport:
// the topic's producer at node is hidden from /lookup for the tombstone
// lifetime, so consumers stop connecting to it while it drains. Always
// 200, even when nothing matches.
func (s *httpAPI) tombstoneTopicProducer(r *http.Request) (any, error) {
	q, err := query(r)
	if err != nil {
		return nil, err
	}
	topic, err := arg(q, "topic", "MISSING_ARG_TOPIC")
	if err != nil {
		return nil, err
	}
	node, err := arg(q, "node", "MISSING_ARG_NODE")
	if err != nil {
		return nil, err
	}
	n := s.registry.tombstone(topic, node)
	s.logger.Info("lookup tombstoned producer", "topic", topic, "node", node, "producers", n)
	return nil, nil
}
