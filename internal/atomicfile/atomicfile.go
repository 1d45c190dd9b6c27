// Package atomicfile replaces small state files (nsqd.dat, a disk queue's
// metadata, deferred messages) so that a crash leaves either the old file
// or the new one, never a torn mix.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write writes data to a temporary file beside path, fsyncs it, renames it
// over path and syncs the directory.
func Write(path string, data []byte) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if dir, err := os.Open(filepath.Dir(path)); err == nil {
		_ = dir.Sync()
		_ = dir.Close()
	}
	return nil
}

// SetAside renames a damaged file to path+".bad" (or path+".N.bad" when
// that is taken, so no earlier one is lost) and returns the new name.
func SetAside(path string) (string, error) {
	bad := path + ".bad"
	for i := 1; ; i++ {
		if _, err := os.Lstat(bad); os.IsNotExist(err) {
			break
		}
		bad = fmt.Sprintf("%s.%d.bad", path, i)
	}
	return bad, os.Rename(path, bad)
}
