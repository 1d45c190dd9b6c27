package protocol

import "errors"

var errBase10 = errors.New("failed to convert to Base10")

// ParseBase10 parses an unsigned decimal as nsqd does for RDY, REQ and DPUB:
// digits only (no sign), and an empty string is 0. Values past 2^63-1 are
// an error rather than wrapping.
func ParseBase10(b []byte) (int64, error) {
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, errBase10
		}
		if n > (1<<63-1-int64(d-'0'))/10 {
			return 0, errBase10
		}
		n = n*10 + int64(d-'0')
	}
	return n, nil
}
