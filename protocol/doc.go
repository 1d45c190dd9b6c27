// Package protocol holds wren's pure wire codecs: the "  V2" broker protocol's
// frames, commands and messages, message IDs, the "  V1" lookup protocol's
// commands and replies, the E_* error codes, and the topic and channel name
// rules.
//
// Nothing here touches the network or starts goroutines. Encoders append to a
// caller's buffer in the style of strconv.Append*, so the hot path can reuse
// one buffer per connection; parsers read from a bufio.Reader, which copes
// with input split across any number of reads.
package protocol
