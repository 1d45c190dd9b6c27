package powercut

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A cut keeps what was fsynced and loses what was only written, while
// files created, renamed and removed stay as they were.
func TestCutKeepsOnlyWhatWasSynced(t *testing.T) {
	f, dir := MountTemp(t)
	path := filepath.Join(dir, "data")
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := file.Write([]byte("synced|")); err != nil {
		t.Fatal(err)
	}
	if err := file.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := file.Write([]byte("lost")); err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != "synced|lost" {
		t.Fatalf("before the cut the file holds %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "never-synced"), []byte("gone"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file replaced by rename, as metadata files are written.
	tmp := filepath.Join(dir, "meta.tmp")
	if err := os.WriteFile(tmp, []byte("v2"), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.Sync(); err != nil {
		t.Fatal(err)
	}
	tf.Close()
	if err := os.Rename(tmp, filepath.Join(dir, "meta")); err != nil {
		t.Fatal(err)
	}
	if f.Fsyncs() != 2 {
		t.Fatalf("%d fsyncs counted, want 2", f.Fsyncs())
	}

	f.Cut()

	for name, want := range map[string]string{"data": "synced|", "never-synced": "", "meta": "v2"} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, []byte(want)) {
			t.Errorf("after the cut %s holds %q (%v), want %q", name, got, err, want)
		}
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the renamed-away %s is back after the cut: %v", tmp, err)
	}
}

// Appends, seeks, truncation and directories work as programs expect.
func TestFileOperations(t *testing.T) {
	_, dir := MountTemp(t)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "f")
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteAt([]byte("hello"), 10); err != nil {
		t.Fatal(err)
	}
	if err := file.Truncate(12); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, append(make([]byte, 10), "he"...)) {
		t.Fatalf("file holds %q (%v)", got, err)
	}
	entries, err := os.ReadDir(sub)
	if err != nil || len(entries) != 1 || entries[0].Name() != "f" {
		t.Fatalf("ReadDir: %v %v", entries, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(sub); err != nil {
		t.Fatal(err)
	}
}
