package broker

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"wren/internal/atomicfile"
	"wren/protocol"
)

// readOrRebuildMetadata reads nsqd.dat. When it is damaged (not JSON, or
// not nsqd.dat's shape) nsqd refuses to start; wren sets it aside and
// rebuilds the topics and channels from the queue files on disk, so their
// messages are served again. Paused states live only in nsqd.dat and are
// lost. A missing nsqd.dat beside queue files is rebuilt the same way.
func readOrRebuildMetadata(dataPath string, logger *slog.Logger) (*metadataFile, error) {
	path := filepath.Join(dataPath, metadataFileName)
	_, statErr := os.Stat(path)
	md, err := readMetadata(dataPath)
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil && errors.Is(statErr, os.ErrNotExist):
		rebuilt := topologyFromQueueFiles(dataPath, logger)
		if len(rebuilt.Topics) > 0 {
			logger.Warn("nsqd.dat is missing; rebuilt topics and channels from the queue files",
				"topics", len(rebuilt.Topics), "channels", countChannels(rebuilt))
		}
		return rebuilt, nil
	case err == nil:
		return md, nil
	case !errors.As(err, &syntaxErr) && !errors.As(err, &typeErr):
		return nil, err
	}
	bad, renameErr := atomicfile.SetAside(path)
	if renameErr != nil {
		logger.Error("setting the damaged nsqd.dat aside; it will be overwritten", "err", renameErr)
		bad = ""
	}
	rebuilt := topologyFromQueueFiles(dataPath, logger)
	logger.Error("nsqd.dat is damaged; rebuilt topics and channels from the queue files, paused states are lost",
		"err", err, "set_aside_as", bad, "topics", len(rebuilt.Topics), "channels", countChannels(rebuilt))
	return rebuilt, nil
}

func countChannels(md *metadataFile) int {
	n := 0
	for _, t := range md.Topics {
		n += len(t.Channels)
	}
	return n
}

// topologyFromQueueFiles lists the topics and channels that have disk
// queue files in dataPath: <topic>.diskqueue.* for a topic and
// <topic>:<channel>.diskqueue.* for a channel (diskQueueName changes
// nothing in a valid name), plus the .deferred.dat files. A channel's
// topic is listed even if it has no files of its own. Nothing is paused.
func topologyFromQueueFiles(dataPath string, logger *slog.Logger) *metadataFile {
	md := &metadataFile{Version: protocol.NSQVersion}
	entries, err := os.ReadDir(dataPath)
	if err != nil {
		logger.Error("listing the data path for queue files", "err", err)
		return md
	}
	channels := map[string]map[string]bool{}
	for _, e := range entries {
		queue, ok := queueOfFile(e.Name())
		if !ok {
			continue
		}
		topic, channel, isChannel := strings.Cut(queue, ":")
		if !protocol.IsValidTopicName(topic) || protocol.IsEphemeral(topic) ||
			(isChannel && (!protocol.IsValidChannelName(channel) || protocol.IsEphemeral(channel))) {
			continue
		}
		if channels[topic] == nil {
			channels[topic] = map[string]bool{}
		}
		if isChannel {
			channels[topic][channel] = true
		}
	}
	for topic, names := range channels {
		tm := topicMetadata{Name: topic, Channels: []channelMetadata{}}
		for name := range names {
			tm.Channels = append(tm.Channels, channelMetadata{Name: name})
		}
		slices.SortFunc(tm.Channels, func(a, b channelMetadata) int { return strings.Compare(a.Name, b.Name) })
		md.Topics = append(md.Topics, tm)
	}
	slices.SortFunc(md.Topics, func(a, b topicMetadata) int { return strings.Compare(a.Name, b.Name) })
	return md
}

// queueOfFile returns the queue name a data-path file belongs to.
func queueOfFile(file string) (string, bool) {
	if queue, ok := strings.CutSuffix(file, ".deferred.dat"); ok {
		return queue, true
	}
	if i := strings.LastIndex(file, ".diskqueue."); i > 0 {
		return file[:i], true
	}
	return "", false
}
