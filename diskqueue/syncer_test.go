package diskqueue

import (
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// An fsync is asked for once every SyncEvery messages, counted across
// writes of any batch size, and asking twice before it runs asks once.
func TestSyncerCountsMessages(t *testing.T) {
	s := &syncer{every: 2500, kick: make(chan struct{}, 1)}
	kicked := func() bool {
		select {
		case <-s.kick:
			return true
		default:
			return false
		}
	}
	s.wrote(200)
	s.wrote(2299)
	if kicked() {
		t.Fatal("fsync asked for after 2,499 messages")
	}
	s.wrote(1)
	if !kicked() {
		t.Fatal("no fsync asked for after 2,500 messages")
	}
	s.wrote(5000)
	s.wrote(5000)
	if !kicked() || kicked() {
		t.Fatal("two thresholds crossed before an fsync ran should ask for one")
	}
}

// The syncer fsyncs the newest data file: go-diskqueue has synced the
// ones before it when it moved on.
func TestSyncerFindsNewestFile(t *testing.T) {
	dir := t.TempDir()
	o := Options{Name: queueName, DataPath: dir}
	s := &syncer{o: o, logger: slog.Default()}
	if err := s.sync(); err != nil || s.file != nil {
		t.Fatalf("with no files: err %v, file %v", err, s.file)
	}
	for _, n := range []int{0, 1, 2} {
		if err := os.WriteFile(segmentFile(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	defer s.file.Close()
	if s.fileNum != 2 || s.file.Name() != segmentFile(dir, 2) {
		t.Fatalf("synced file %d (%s), want 2", s.fileNum, s.file.Name())
	}
}

// When the file the syncer knows is gone and the next number was never
// written (go-diskqueue skipped it), the syncer finds the newest file.
func TestSyncerJumpsGaps(t *testing.T) {
	dir := t.TempDir()
	s := &syncer{o: Options{Name: queueName, DataPath: dir}, logger: slog.Default(), fileNum: 3}
	if err := os.WriteFile(segmentFile(dir, 6), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.sync(); err != nil {
		t.Fatal(err)
	}
	defer s.file.Close()
	if s.fileNum != 6 {
		t.Fatalf("synced file %d, want 6", s.fileNum)
	}
}

// SyncTimeout (--sync-timeout) syncs a queue that has been written to
// even when SyncEvery is far off: go-diskqueue's sync also writes the
// metadata file, which otherwise appears only on Close.
func TestSyncTimeoutSyncsWithoutSyncEvery(t *testing.T) {
	o := backlogOptions(t, t.TempDir())
	o.SyncEvery = 1 << 30
	o.SyncTimeout = 50 * time.Millisecond
	b := openBacklog(t, o)
	if err := b.Put(messages(0, 3)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		// depth (in records), read file,position, write file,position
		data, err := os.ReadFile(metadataPath(o))
		lines := strings.Split(string(data), "\n")
		if err == nil && len(lines) >= 3 && lines[0] == "1" && !strings.HasSuffix(lines[2], ",0") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metadata after %s: %q, %v; want a sync recording the record written", waitTimeout, data, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
