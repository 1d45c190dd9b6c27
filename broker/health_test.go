package broker

import (
	"errors"
	"testing"
)

// Health is NOK while any queue's writes fail, names the others, and is OK
// once each failing queue has written again; one queue's success does not
// hide another's failure.
func TestHealthStateRecovers(t *testing.T) {
	var h healthState
	full := errors.New("writing to disk queue a: no space left on device")
	steps := []struct {
		queue string
		err   error
		want  string
	}{
		{"b", nil, "OK"}, // a success that was never a failure changes nothing
		{"a", full, "NOK - " + full.Error()},
		{"b", errors.New("writing to disk queue b: EIO"), "NOK - " + full.Error() + "; 1 more failing: b"},
		{"a", nil, "NOK - writing to disk queue b: EIO"},
		{"c", nil, "NOK - writing to disk queue b: EIO"},
		{"b", nil, "OK"},
	}
	for i, s := range steps {
		h.set(s.queue, s.err)
		if got := h.String(); got != s.want {
			t.Fatalf("step %d (%s, %v): health %q, want %q", i, s.queue, s.err, got, s.want)
		}
	}
}
