package broker

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// healthState is what /ping and /stats report: OK, or the first failing
// disk queue's error while any is failing. Each queue reports when its
// writes start failing and when one succeeds again (diskqueue's
// OnWriteState), so health returns to OK once every queue that failed has
// written again, rather than staying NOK until a restart, and one queue's
// success never hides another's failure.
type healthState struct {
	mu      sync.Mutex
	failing map[string]error // queue name ("" for the broker itself) → its error
	text    atomic.Pointer[string]
}

// set records queue's write state: err, or healthy when err is nil.
func (h *healthState) set(queue string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if _, ok := h.failing[queue]; !ok {
			return
		}
		delete(h.failing, queue)
	} else {
		if h.failing == nil {
			h.failing = make(map[string]error)
		}
		h.failing[queue] = err
	}
	if len(h.failing) == 0 {
		h.text.Store(nil)
		return
	}
	names := make([]string, 0, len(h.failing))
	for name := range h.failing {
		names = append(names, name)
	}
	sort.Strings(names)
	s := "NOK - " + h.failing[names[0]].Error()
	if len(names) > 1 {
		s += fmt.Sprintf("; %d more failing: %s", len(names)-1, strings.Join(names[1:], ", "))
	}
	h.text.Store(&s)
}

// String is nsqd's health text: "OK" or "NOK - <error>". A disk queue's
// error names the queue ("writing to disk queue <name>: ...").
func (h *healthState) String() string {
	if s := h.text.Load(); s != nil {
		return *s
	}
	return "OK"
}
