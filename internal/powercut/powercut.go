// Package powercut is a filesystem for tests of durability against power
// loss. It keeps every file in memory twice: as written, and as of its
// last fsync. Cut throws the written state away and keeps the fsynced one,
// as a machine that loses power keeps only what reached the disk. A
// SIGKILL cannot tell a write from an fsync, because the page cache
// survives the process; Cut can.
//
// The model: file data is durable only once fsynced; creating, renaming
// and removing files is durable at once (a journaling filesystem's
// metadata). Files are served with direct I/O, so the kernel caches no
// data and the next reader sees what Cut left.
//
// Mounting needs root and /dev/fuse: Mount calls mount(2) itself.
package powercut

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is one power-cut filesystem. The zero value is not usable; call New.
type FS struct {
	root *dir

	mu    sync.Mutex
	files map[*file]struct{} // every file that exists
	syncs int                // fsyncs of files, for tests to count
}

// New returns an empty filesystem.
func New() *FS {
	f := &FS{files: map[*file]struct{}{}}
	f.root = &dir{fsys: f}
	return f
}

// Mount serves the filesystem at dir, which must exist, until the
// returned function unmounts it.
func (f *FS) Mount(dir string) (unmount func() error, err error) {
	// No cached entries or attributes: readers see a file's size as Cut
	// left it.
	zero := time.Duration(0)
	server, err := fs.Mount(dir, f.root, &fs.Options{
		EntryTimeout: &zero,
		AttrTimeout:  &zero,
		MountOptions: fuse.MountOptions{
			DirectMountStrict: true,
			FsName:            "powercut",
			Name:              "powercut",
			DisableXAttrs:     true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mounting the power-cut filesystem at %s: %w", dir, err)
	}
	return server.Unmount, nil
}

// Cut loses every write not yet fsynced. Call it with no process holding
// the filesystem's files open (kill them first), as after a real cut.
func (f *FS) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for fl := range f.files {
		fl.mu.Lock()
		fl.data = append([]byte(nil), fl.synced...)
		fl.mu.Unlock()
	}
}

// Fsyncs reports how many fsyncs of files the filesystem has served.
func (f *FS) Fsyncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

func (f *FS) add(fl *file) {
	f.mu.Lock()
	f.files[fl] = struct{}{}
	f.mu.Unlock()
}

func (f *FS) remove(fl *file) {
	f.mu.Lock()
	delete(f.files, fl)
	f.mu.Unlock()
}

// dir is a directory. Its children are kept by go-fuse's inode tree,
// which also answers lookups and directory listings.
type dir struct {
	fs.Inode
	fsys *FS
}

var (
	_ fs.NodeCreater   = (*dir)(nil)
	_ fs.NodeMkdirer   = (*dir)(nil)
	_ fs.NodeUnlinker  = (*dir)(nil)
	_ fs.NodeRmdirer   = (*dir)(nil)
	_ fs.NodeRenamer   = (*dir)(nil)
	_ fs.NodeGetattrer = (*dir)(nil)
	_ fs.NodeFsyncer   = (*dir)(nil)
)

func (d *dir) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

func (d *dir) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	fl := &file{fsys: d.fsys}
	d.fsys.add(fl)
	child := d.NewPersistentInode(ctx, fl, fs.StableAttr{Mode: syscall.S_IFREG})
	d.AddChild(name, child, true)
	fl.attr(&out.Attr)
	return child, nil, fuse.FOPEN_DIRECT_IO, 0
}

func (d *dir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	child := d.NewPersistentInode(ctx, &dir{fsys: d.fsys}, fs.StableAttr{Mode: syscall.S_IFDIR})
	d.AddChild(name, child, true)
	out.Attr.Mode = syscall.S_IFDIR | 0o755
	return child, 0
}

func (d *dir) Unlink(ctx context.Context, name string) syscall.Errno {
	if child := d.GetChild(name); child != nil {
		if fl, ok := child.Operations().(*file); ok {
			d.fsys.remove(fl)
		}
	}
	return 0
}

func (d *dir) Rmdir(ctx context.Context, name string) syscall.Errno {
	child := d.GetChild(name)
	if child == nil {
		return syscall.ENOENT
	}
	if len(child.Children()) > 0 {
		return syscall.ENOTEMPTY
	}
	return 0
}

func (d *dir) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	// A file renamed over another replaces it: the one replaced is gone.
	if old := newParent.EmbeddedInode().GetChild(newName); old != nil {
		if fl, ok := old.Operations().(*file); ok {
			d.fsys.remove(fl)
		}
	}
	return 0
}

func (d *dir) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno { return 0 }

// file is a regular file: data as written, synced as of the last fsync.
type file struct {
	fs.Inode
	fsys *FS

	mu     sync.Mutex
	data   []byte
	synced []byte
}

var (
	_ fs.NodeOpener    = (*file)(nil)
	_ fs.NodeReader    = (*file)(nil)
	_ fs.NodeWriter    = (*file)(nil)
	_ fs.NodeFsyncer   = (*file)(nil)
	_ fs.NodeFlusher   = (*file)(nil)
	_ fs.NodeGetattrer = (*file)(nil)
	_ fs.NodeSetattrer = (*file)(nil)
)

func (fl *file) attr(out *fuse.Attr) {
	out.Mode = syscall.S_IFREG | 0o644
	out.Size = uint64(len(fl.data))
	out.Blocks = (out.Size + 511) / 512
}

func (fl *file) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		fl.mu.Lock()
		fl.data = fl.data[:0]
		fl.mu.Unlock()
	}
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (fl *file) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.attr(&out.Attr)
	return 0
}

func (fl *file) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if size, ok := in.GetSize(); ok {
		fl.data = resize(fl.data, int(size))
	}
	fl.attr(&out.Attr)
	return 0
}

func (fl *file) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if off >= int64(len(fl.data)) {
		return fuse.ReadResultData(nil), 0
	}
	n := copy(dest, fl.data[off:])
	return fuse.ReadResultData(dest[:n]), 0
}

func (fl *file) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	end := int(off) + len(data)
	if end > len(fl.data) {
		fl.data = resize(fl.data, end)
	}
	copy(fl.data[off:], data)
	return uint32(len(data)), 0
}

func (fl *file) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	fl.mu.Lock()
	fl.synced = append(fl.synced[:0], fl.data...)
	fl.mu.Unlock()
	fl.fsys.mu.Lock()
	fl.fsys.syncs++
	fl.fsys.mu.Unlock()
	return 0
}

func (fl *file) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return 0 }

// resize returns b with length n, zero-filled past its old end.
func resize(b []byte, n int) []byte {
	if n <= len(b) {
		return b[:n]
	}
	if n <= cap(b) {
		old := len(b)
		b = b[:n]
		clear(b[old:])
		return b
	}
	grown := make([]byte, n, max(n, 2*cap(b)))
	copy(grown, b)
	return grown
}

// Available reports whether this process can mount a power-cut
// filesystem: it needs /dev/fuse and root.
func Available() error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return fmt.Errorf("no /dev/fuse: %w", err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("mounting needs root (euid %d)", os.Geteuid())
	}
	return nil
}

// MountTemp mounts a new filesystem on a fresh temporary directory of t's
// and unmounts it when t ends, whether it passed or not. It fails t when
// the filesystem cannot be mounted here.
func MountTemp(t testing.TB) (*FS, string) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("the power-cut filesystem needs /dev/fuse and root: %v", err)
	}
	f := New()
	dir := t.TempDir()
	unmount, err := f.Mount(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return f, dir
}
