package broker

// GET and PUT /config/:opt: read any option by its config-file name, and
// change the two nsqd lets change at run time, the lookup addresses and
// the log level.

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// lookupdTCPAddrs returns a copy of the lookup TCP addresses and a channel
// that is closed when PUT /config/nsqlookupd_tcp_addresses next changes
// them: the lookup loop reconnects then.
func (b *Broker) lookupdTCPAddrs() ([]string, <-chan struct{}) {
	b.runtimeMu.Lock()
	defer b.runtimeMu.Unlock()
	if b.lookupdChanged == nil {
		b.lookupdChanged = make(chan struct{})
	}
	return append([]string(nil), b.opts.LookupdTCPAddrs...), b.lookupdChanged
}

func (b *Broker) setLookupdTCPAddrs(addrs []string) {
	b.runtimeMu.Lock()
	defer b.runtimeMu.Unlock()
	b.opts.LookupdTCPAddrs = addrs
	if b.lookupdChanged != nil {
		close(b.lookupdChanged)
		b.lookupdChanged = nil
	}
}

// nsqdLogLevels are nsqd's numbers for its log levels, which is what its
// GET /config/log_level returns.
var nsqdLogLevels = map[string]int{"debug": 1, "info": 2, "warn": 3, "warning": 3, "error": 4, "fatal": 5}

// getConfig is GET /config/:opt. As in nsqd, string options come back as
// bare text and all others as JSON.
func (s *httpAPI) getConfig(_ *http.Request, ps httprouter.Params) (any, error) {
	v, ok := s.b.configValue(ps.ByName("opt"))
	if !ok {
		return nil, errAPI(http.StatusBadRequest, "INVALID_OPTION")
	}
	return v, nil
}

// configValue returns the option whose config name is name.
func (b *Broker) configValue(name string) (any, bool) {
	b.runtimeMu.RLock()
	defer b.runtimeMu.RUnlock()
	switch name {
	case "log_level":
		// nsqd's log level is a number, 1 (debug) to 5 (fatal).
		n, ok := nsqdLogLevels[strings.ToLower(b.opts.LogLevel)]
		if !ok {
			n = nsqdLogLevels["info"]
		}
		return n, true
	case "id":
		// nsqd names --node-id "id" in its config file and here.
		name = "node_id"
	}
	v := reflect.ValueOf(b.opts).Elem()
	for i := range v.NumField() {
		if n := configName(v.Type().Field(i)); n == "" || n != name {
			continue
		}
		f := v.Field(i)
		if f.Kind() == reflect.Slice {
			// A copy, never null: nsqd's defaults are empty lists.
			out := reflect.MakeSlice(f.Type(), f.Len(), f.Len())
			reflect.Copy(out, f)
			return out.Interface(), true
		}
		if f.Kind() == reflect.String {
			return f.String(), true
		}
		return f.Interface(), true
	}
	return nil, false
}

// configName is the name of an option in the config file and in
// /config/: the cfg tag, else the flag name with "-" turned into "_".
// Fields with neither are not options.
func configName(f reflect.StructField) string {
	if c := f.Tag.Get("cfg"); c != "" {
		return c
	}
	return strings.ReplaceAll(f.Tag.Get("flag"), "-", "_")
}

// putConfig is PUT /config/:opt with the new value as the body: a JSON
// array of host:port strings for nsqlookupd_tcp_addresses, a bare level
// name for log_level. It answers with the option's new value.
func (s *httpAPI) putConfig(r *http.Request, ps httprouter.Params) (any, error) {
	name := ps.ByName("opt")
	limit := s.b.opts.MaxMsgSize + 1
	body, err := io.ReadAll(io.LimitReader(r.Body, limit))
	if err != nil {
		return nil, errAPI(http.StatusInternalServerError, "INTERNAL_ERROR")
	}
	// nsqd checks the body before the option name, with 413 even for an
	// empty body.
	if int64(len(body)) == limit || len(body) == 0 {
		return nil, errAPI(http.StatusRequestEntityTooLarge, "INVALID_VALUE")
	}
	switch name {
	case "nsqlookupd_tcp_addresses":
		var addrs []string
		if err := json.Unmarshal(body, &addrs); err != nil {
			return nil, errAPI(http.StatusBadRequest, "INVALID_VALUE")
		}
		for _, a := range addrs {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				return nil, errAPI(http.StatusBadRequest, "INVALID_VALUE")
			}
		}
		if addrs == nil {
			addrs = []string{}
		}
		s.b.setLookupdTCPAddrs(addrs)
		s.b.logger.Info("lookup addresses changed", "nsqlookupd_tcp_addresses", addrs)
	case "log_level":
		text := strings.ToLower(strings.TrimSpace(string(body)))
		level, err := ParseLogLevel(text)
		if err != nil {
			return nil, errAPI(http.StatusBadRequest, "INVALID_VALUE")
		}
		s.b.runtimeMu.Lock()
		s.b.opts.LogLevel = text
		s.b.runtimeMu.Unlock()
		if s.b.opts.LevelVar != nil {
			s.b.opts.LevelVar.Set(level)
		}
		s.b.logger.Info("log level changed", "log_level", text)
	default:
		return nil, errAPI(http.StatusBadRequest, "INVALID_OPTION")
	}
	return s.getConfig(r, ps)
}
