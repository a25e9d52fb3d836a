package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent snapshot of the open data file to w, from
// one read transaction: writes go on meanwhile, and the copy holds every
// write committed before it began. It returns the bytes written.
func (db *DB) Backup(w io.Writer) (int64, error) {
	var n int64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup: %w", err)
	}
	return n, nil
}

// BackupFile writes a consistent snapshot of the stopped data file at path
// to w. ErrLocked if a server holds the file.
func BackupFile(path string, w io.Writer) (int64, error) {
	b, err := openReadOnly(path)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	var n int64
	err = b.View(func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store: backup %s: %w", path, err)
	}
	return n, nil
}

// Compact writes the live data of the stopped file in into a new file out,
// without the free pages that churn left behind, through a temporary name
// renamed into place once synced. ErrLocked if a server holds in.
func Compact(in, out string) error {
	src, err := openReadOnly(in)
	if err != nil {
		return err
	}
	defer src.Close()
	return WriteAtomic(out, func(tmp string) error {
		dst, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			return err
		}
		if err := bolt.Compact(dst, src, 1<<20); err != nil {
			dst.Close()
			return fmt.Errorf("store: compact %s: %w", in, err)
		}
		return dst.Close()
	})
}

// InUse reports whether a process holds the data file at path.
func InUse(path string) (bool, error) {
	b, err := openReadOnly(path)
	if errors.Is(err, ErrLocked) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return false, b.Close()
}

func openReadOnly(path string) (*bolt.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return b, nil
}

// WriteAtomic makes the file path by letting write fill a temporary file
// beside it, then syncs it, renames it to path and syncs the directory: a
// crash leaves either no file at path or a complete one, never a part.
// An existing path is replaced.
func WriteAtomic(path string, write func(tmp string) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	tmp := f.Name()
	f.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	ok = true
	return syncFile(dir)
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", path, err)
	}
	return nil
}
