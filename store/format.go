package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// FormatVersion is the data format this binary reads and writes. Each
// change of format adds a step to migrations and raises it by one.
const FormatVersion = 2

// migrations[v] moves a file from format v to v+1. A file made before the
// format was recorded is version 0; its step only records the version.
// Format 2 stores sessions in the binary encoding of codec.go; its step
// rewrites nothing, since sessions in JSON still decode and are written
// in the new encoding at their next save, but older binaries, which could
// not read them, refuse the file.
var migrations = []func(*bolt.Tx) error{
	0: func(*bolt.Tx) error { return nil },
	1: func(*bolt.Tx) error { return nil },
}

var (
	bucketMeta = []byte("meta")
	keyFormat  = []byte("format_version")
)

// ErrNewerFormat is returned by Open for a file written by a newer
// sessiond, which this binary must not touch.
var ErrNewerFormat = errors.New("store: data file written by a newer sessiond")

// storedFormat returns the format version recorded in the file, 0 if none.
func storedFormat(tx *bolt.Tx) uint64 {
	b := tx.Bucket(bucketMeta)
	if b == nil {
		return 0
	}
	v := b.Get(keyFormat)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// checkFormat refuses a file whose format is newer than FormatVersion,
// before anything is written to it.
func checkFormat(b *bolt.DB, path string) error {
	var v uint64
	b.View(func(tx *bolt.Tx) error { v = storedFormat(tx); return nil })
	if v > FormatVersion {
		return fmt.Errorf("%w: %s has data format %d, this binary knows up to %d; run the newer sessiond, or restore a backup taken before the upgrade",
			ErrNewerFormat, path, v, FormatVersion)
	}
	return nil
}

// migrateFormat runs each migration step from the file's format to
// FormatVersion, in the transaction that opens the file, and records the
// version.
func migrateFormat(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	for v := storedFormat(tx); v < FormatVersion; v++ {
		if err := migrations[v](tx); err != nil {
			return fmt.Errorf("store: migrate data format %d to %d: %w", v, v+1, err)
		}
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], FormatVersion)
	return meta.Put(keyFormat, buf[:])
}
