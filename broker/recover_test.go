package broker

import (
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestDamagedNsqdDatRebuiltFromQueueFiles: a damaged nsqd.dat is set
// aside and the topics and channels come back from the queue files;
// ephemeral names, .bad files of a valid queue and strangers are handled.
func TestDamagedNsqdDatRebuiltFromQueueFiles(t *testing.T) {
	files := []string{
		"orders.diskqueue.meta.dat", "orders.diskqueue.000000.dat",
		"orders:billing.diskqueue.meta.dat", "orders:audit.diskqueue.000003.dat.bad",
		"orders:late.deferred.dat",
		"only-a-channel:ch.diskqueue.meta.dat",
		"tmp#ephemeral.diskqueue.meta.dat", "orders:c#ephemeral.diskqueue.meta.dat",
		"bad name!.diskqueue.meta.dat", "notes.txt",
	}
	want := []topicMetadata{
		{Name: "only-a-channel", Channels: []channelMetadata{{Name: "ch"}}},
		{Name: "orders", Channels: []channelMetadata{{Name: "audit"}, {Name: "billing"}, {Name: "late"}}},
	}
	for _, damage := range []string{"", "{\"topics\":[{\"name\":", "\x00\x01 not json", "{\"topics\":7}"} {
		t.Run(damage, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range files {
				if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, metadataFileName)
			if err := os.WriteFile(path, []byte(damage), 0o600); err != nil {
				t.Fatal(err)
			}
			md, err := readOrRebuildMetadata(dir, slog.New(slog.NewTextHandler(testLogWriter{t}, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(md.Topics, want) {
				t.Fatalf("rebuilt %+v, want %+v", md.Topics, want)
			}
			if got, err := os.ReadFile(path + ".bad"); err != nil || string(got) != damage {
				t.Fatalf("nsqd.dat.bad = %q, %v; want the damaged file", got, err)
			}
		})
	}
}

// TestMissingNsqdDatRebuiltFromQueueFiles: queue files without nsqd.dat
// bring their topics back; an empty data path has none.
func TestMissingNsqdDatRebuiltFromQueueFiles(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	if md, err := readOrRebuildMetadata(dir, logger); err != nil || len(md.Topics) != 0 {
		t.Fatalf("empty data path: %+v, %v", md, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "t:c.diskqueue.meta.dat"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	md, err := readOrRebuildMetadata(dir, logger)
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Name != "t" || len(md.Topics[0].Channels) != 1 {
		t.Fatalf("rebuilt %+v, %v", md, err)
	}
}
