package diskqueue

import (
	"os"
	"sync"
	"testing"
	"time"
)

// durableOptions are backlog options with Durable set, and go-diskqueue's
// own syncs (which also write its metadata) put off for the whole test,
// so only what the durable path does is on disk.
func durableOptions(t *testing.T, dir string) Options {
	o := backlogOptions(t, dir)
	o.Durable = true
	o.SyncEvery = 1 << 40
	o.SyncTimeout = time.Hour
	return o
}

// A durable Put returns only after an fsync of the file it wrote, and
// after a metadata file exists that recovery starts from.
func TestDurablePutFsyncsBeforeReturning(t *testing.T) {
	dir := t.TempDir()
	b := openBacklog(t, durableOptions(t, dir))
	if _, err := os.Stat(metaFile(dir)); err != nil {
		t.Fatalf("no metadata file after opening a durable queue: %v", err)
	}
	before := b.durable.fsyncs.Load()
	for i := range 3 {
		if err := b.Put(messages(i*10, i*10+10)); err != nil {
			t.Fatal(err)
		}
		after := b.durable.fsyncs.Load()
		if after <= before {
			t.Fatalf("Put %d returned after %d fsyncs, want more than %d", i, after, before)
		}
		before = after
	}
	// The first commit also fsyncs the directory, for file 0's creation.
	if got := b.durable.fsyncs.Load(); got != 4 {
		t.Fatalf("3 Puts one after another made %d fsyncs, want 4 (3 data, 1 directory)", got)
	}
}

// Puts that arrive while a group is written and fsynced wait for the next
// group and share its fsync.
func TestDurableGroupCommitSharesFsyncs(t *testing.T) {
	const publishers, each = 16, 25
	b := openBacklog(t, durableOptions(t, t.TempDir()))
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				n := (p*each + i) * 2
				if err := b.Put(messages(n, n+2)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	puts, fsyncs := int64(publishers*each), b.durable.fsyncs.Load()
	t.Logf("%d concurrent Puts shared %d fsyncs", puts, fsyncs)
	if fsyncs*2 > puts {
		t.Fatalf("%d concurrent Puts made %d fsyncs, want at most half as many", puts, fsyncs)
	}
	wantBacklogDepth(t, b, publishers*each*2)
}

// What a durable Put acknowledged is found again after a crash whatever
// metadata file survives, from the one written at open or at the last
// file rollover to the newest: go-diskqueue reads a write file to its real
// end when it is longer than the metadata says. Each case copies the
// files as a killed process leaves them, puts back an older metadata file,
// and reopens.
func TestDurableRecoversWithOlderMetadata(t *testing.T) {
	const puts, per = 12, 20
	dir := t.TempDir()
	o := durableOptions(t, dir)
	o.MaxBytesPerFile = 4096 // about four Puts a file, so the files roll over
	b := openBacklog(t, o)

	var versions []string // the metadata file after each Put
	readMeta := func() string {
		data, err := os.ReadFile(metaFile(dir))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	versions = append(versions, readMeta())
	for i := range puts {
		if err := b.Put(messages(i*per, (i+1)*per)); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, readMeta())
	}
	if n := len(dataFiles(t, dir)); n < 3 {
		t.Fatalf("%d data files, want the puts spread over at least 3", n)
	}
	crashed := t.TempDir()
	copyQueueFiles(t, dir, crashed)

	// The metadata of the last rollover is the oldest one a power cut can
	// leave: the commit after it fsyncs the directory.
	last := versions[len(versions)-1]
	oldest := len(versions) - 1
	for oldest > 0 && versions[oldest-1] == last {
		oldest--
	}
	if oldest == 0 {
		t.Fatal("the metadata never changed; the files did not roll over")
	}
	for v := oldest; v < len(versions); v++ {
		recovered := t.TempDir()
		copyQueueFiles(t, crashed, recovered)
		writeMeta(t, recovered, versions[v])
		r := openBacklog(t, durableOptions(t, recovered))
		wantBacklogDepth(t, r, puts*per)
		takeN(t, r, 0, puts*per)
		// And the queue carries on durably after the recovery.
		if err := r.Put(messages(1000, 1001)); err != nil {
			t.Fatal(err)
		}
		takeN(t, r, 1000, 1)
	}
	// A metadata file from before the last rollover names an older write
	// file. go-diskqueue alone would never read the newer files; the
	// metadata repair (repair.go) sees segment files past the write file
	// and rebuilds, so every message is found here too. A commit after a
	// rollover still fsyncs the directory, so the repair is not needed.
	stale := t.TempDir()
	copyQueueFiles(t, crashed, stale)
	writeMeta(t, stale, versions[oldest-1])
	s := openBacklog(t, durableOptions(t, stale))
	wantBacklogDepth(t, s, puts*per)
	takeN(t, s, 0, puts*per)

	// A queue that never rolled over recovers from the metadata file
	// written when it was opened.
	fresh := t.TempDir()
	f := openBacklog(t, durableOptions(t, fresh))
	if err := f.Put(messages(0, per)); err != nil {
		t.Fatal(err)
	}
	recovered := t.TempDir()
	copyQueueFiles(t, fresh, recovered)
	writeMeta(t, recovered, "0\n0,0\n0,0\n")
	takeN(t, openBacklog(t, durableOptions(t, recovered)), 0, per)
}

// Empty removes the metadata file; the next durable commit writes one, so
// what is put after an Empty survives a crash.
func TestDurableEmptyThenCrash(t *testing.T) {
	dir := t.TempDir()
	b := openBacklog(t, durableOptions(t, dir))
	if err := b.Put(messages(0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := b.Empty(); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(messages(10, 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(metaFile(dir)); err != nil {
		t.Fatalf("no metadata file after a durable Put following Empty: %v", err)
	}
	crashed := t.TempDir()
	copyQueueFiles(t, dir, crashed)
	r := openBacklog(t, durableOptions(t, crashed))
	wantBacklogDepth(t, r, 10)
	takeN(t, r, 10, 10)
}
