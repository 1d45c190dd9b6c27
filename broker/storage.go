package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"wren/diskqueue"
	"wren/internal/atomicfile"
	"wren/protocol"
)

// queueConfig is what topics and channels need from the broker: their
// limits, where their data lives, and how to open their disk queues.
type queueConfig struct {
	dataPath            string
	nodeID              int64
	memQueueSize        int64
	durable             bool // --durable: deferred messages are journaled (deferjournal.go)
	maxChannelConsumers int
	topologyAware       bool // --enable-experiment=topology-aware-consumption
	logger              *slog.Logger
	openBackend         func(name string, ephemeral bool) *diskqueue.Backlog
	// lookupNotify tells the lookup peers about a created or deleted
	// channel; nil when there are none.
	lookupNotify func(lookupEvent)
	// latency configures each channel's end-to-end latency window; no
	// quantiles means none is kept.
	latency latencyConfig
}

// diskQueueName maps a topic or "topic:channel" name to the file prefix
// nsqd uses, so data directories move between nsqd and wren.
func diskQueueName(name string) string {
	return strings.ReplaceAll(name, "/", "_")
}

// metadataFile is nsqd.dat's layout.
type metadataFile struct {
	Topics  []topicMetadata `json:"topics"`
	Version string          `json:"version"`
}

type topicMetadata struct {
	Name     string            `json:"name"`
	Paused   bool              `json:"paused"`
	Channels []channelMetadata `json:"channels"`
}

type channelMetadata struct {
	Name   string `json:"name"`
	Paused bool   `json:"paused"`
}

const metadataFileName = "nsqd.dat"

func readMetadata(dataPath string) (*metadataFile, error) {
	data, err := os.ReadFile(filepath.Join(dataPath, metadataFileName))
	if errors.Is(err, os.ErrNotExist) {
		return &metadataFile{}, nil
	}
	if err != nil {
		return nil, err
	}
	var md metadataFile
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", metadataFileName, err)
	}
	return &md, nil
}

// writeFileAtomic replaces path so that a crash leaves either the old file
// or the new one.
func writeFileAtomic(path string, data []byte) error { return atomicfile.Write(path, data) }

// The deferred file keeps a queue's deferred messages across a clean
// restart with their due times, which nsqd's disk format has no room for:
// "WRNDEFER1\n", then per message [int64 due ns][int32 size][encoded message].
const deferredMagic = "WRNDEFER1\n"

func deferredFilePath(dataPath, name string) string {
	return filepath.Join(dataPath, diskQueueName(name)+".deferred.dat")
}

func writeDeferredFile(dataPath, name string, msgs []*message) error {
	return writeDeferredPath(deferredFilePath(dataPath, name), msgs)
}

// writeDeferredPath writes msgs to path in the deferred file's format,
// or removes path when there are none.
func writeDeferredPath(path string, msgs []*message) error {
	if len(msgs) == 0 {
		_ = os.Remove(path)
		return nil
	}
	buf := []byte(deferredMagic)
	for _, m := range msgs {
		buf = appendDeferredRecord(buf, m)
	}
	return writeFileAtomic(path, buf)
}

// appendDeferredRecord appends one deferred-file record for m.
func appendDeferredRecord(dst []byte, m *message) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(m.due))
	dst = binary.BigEndian.AppendUint32(dst, uint32(m.EncodedSize()))
	return protocol.AppendMessage(dst, &m.Message)
}

func readDeferredFile(dataPath, name string) ([]*message, error) {
	return readDeferredPath(deferredFilePath(dataPath, name))
}

func readDeferredPath(path string) ([]*message, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeDeferred(data)
}

// decodeDeferred reads a deferred file's contents. A damaged tail is an
// error, but the whole messages before it are returned. Sizes are checked
// against the bytes actually there, so a damaged size never allocates.
func decodeDeferred(data []byte) ([]*message, error) {
	if !bytes.HasPrefix(data, []byte(deferredMagic)) {
		return nil, errors.New("not a deferred-messages file")
	}
	rest := data[len(deferredMagic):]
	var out []*message
	for len(rest) > 0 {
		if len(rest) < 12 {
			return out, errors.New("truncated deferred file")
		}
		due := int64(binary.BigEndian.Uint64(rest[:8]))
		size := uint64(binary.BigEndian.Uint32(rest[8:12]))
		rest = rest[12:]
		if size < protocol.MessageHeaderSize {
			return out, fmt.Errorf("bad record size %d in deferred file", size)
		}
		if size > uint64(len(rest)) {
			return out, errors.New("truncated deferred file")
		}
		m, err := decodeRecord(append([]byte(nil), rest[:size]...))
		if err != nil {
			return out, err
		}
		m.due = due
		out = append(out, m)
		rest = rest[size:]
	}
	return out, nil
}

func decodeRecord(rec []byte) (*message, error) {
	pm, err := protocol.DecodeMessage(rec)
	if err != nil {
		return nil, err
	}
	return &message{Message: pm}, nil
}

func removeDeferredFile(dataPath, name string) {
	_ = os.Remove(deferredFilePath(dataPath, name))
}

// lockDataPath takes an exclusive flock on the data directory, as nsqd
// does, so a second broker (wren or nsqd) on it refuses to start.
func lockDataPath(dataPath string) (*os.File, error) {
	if err := os.MkdirAll(dataPath, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Open(dataPath)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("--data-path=%s in use by another process (%w)", dataPath, err)
	}
	return f, nil
}

func unlockDataPath(f *os.File) {
	if f == nil {
		return
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	_ = f.Close()
}
