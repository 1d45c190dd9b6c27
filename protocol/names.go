package protocol

import "strings"

// EphemeralSuffix marks a topic or channel that is never written to disk and
// is deleted when its last client (or channel) goes.
const EphemeralSuffix = "#ephemeral"

// MaxNameLength is the longest valid topic or channel name, suffix included.
const MaxNameLength = 64

// IsValidTopicName reports whether name matches ^[.a-zA-Z0-9_-]+(#ephemeral)?$
// and is 1 to 64 bytes long.
func IsValidTopicName(name string) bool { return isValidName(name) }

// IsValidChannelName applies the same rule as IsValidTopicName.
func IsValidChannelName(name string) bool { return isValidName(name) }

// IsEphemeral reports whether name carries the #ephemeral suffix.
func IsEphemeral(name string) bool { return strings.HasSuffix(name, EphemeralSuffix) }

func isValidName(name string) bool {
	if len(name) < 1 || len(name) > MaxNameLength {
		return false
	}
	base := strings.TrimSuffix(name, EphemeralSuffix)
	if base == "" {
		return false
	}
	for i := 0; i < len(base); i++ {
		c := base[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
