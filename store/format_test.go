package store

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestFormatVersion: a new file records FormatVersion; a file with no
// version (made before it was recorded) is migrated and gets it; a file
// from a newer binary is refused, untouched, with a message that says so.
func TestFormatVersion(t *testing.T) {
	dir := t.TempDir()
	version := func(path string) uint64 {
		b, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var v uint64
		b.View(func(tx *bolt.Tx) error { v = storedFormat(tx); return nil })
		return v
	}
	fresh := filepath.Join(dir, "fresh.db")
	db, err := Open(fresh, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if v := version(fresh); v != FormatVersion {
		t.Errorf("new file: format %d, want %d", v, FormatVersion)
	}

	old := filepath.Join(dir, "old.db")
	b, _ := bolt.Open(old, 0o600, nil)
	b.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("sessions")); return err })
	b.Close()
	if db, err = Open(old, Options{}); err != nil {
		t.Fatalf("open a file with no format version: %v", err)
	}
	db.Close()
	if v := version(old); v != FormatVersion {
		t.Errorf("migrated file: format %d, want %d", v, FormatVersion)
	}

	newer := filepath.Join(dir, "newer.db")
	b, _ = bolt.Open(newer, 0o600, nil)
	b.Update(func(tx *bolt.Tx) error {
		meta, _ := tx.CreateBucket(bucketMeta)
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], FormatVersion+1)
		return meta.Put(keyFormat, buf[:])
	})
	b.Close()
	_, err = Open(newer, Options{})
	if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "newer sessiond") {
		t.Fatalf("open a newer file: %v, want ErrNewerFormat", err)
	}
	b, _ = bolt.Open(newer, 0o600, nil)
	defer b.Close()
	b.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("sessions")) != nil {
			t.Errorf("the refused newer file was written to")
		}
		return nil
	})
}
