package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrDamaged marks a data file whose structure is broken: truncated, a
// header that does not check out, or pages that cannot be read.
var ErrDamaged = errors.New("store: damaged data file")

// guarded runs fn, a bbolt View or Update, with memory faults turned into
// panics and any panic into an error wrapping ErrDamaged, so that a read
// of a damaged page (or of a page past the end of a truncated file, which
// would raise SIGBUS) fails that request instead of killing the process.
// bbolt rolls the transaction back as the panic passes.
func guarded(what string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrDamaged, what, r)
		}
	}()
	return fn()
}

// bbolt's file layout: every page starts with a 16-byte header; pages 0
// and 1 hold the two meta records, the newer of which is in force.
const (
	pageHeaderSize = 16
	metaSize       = 64
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
)

type meta struct {
	pageSize uint32
	pages    uint64 // the high-water mark: pages the file must hold
	txid     uint64
}

func parseMeta(b []byte) (meta, error) {
	if len(b) < pageHeaderSize+metaSize {
		return meta{}, errors.New("short meta page")
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return meta{}, errors.New("no bbolt magic number")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return meta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return meta{}, errors.New("meta checksum mismatch")
	}
	ps := le.Uint32(m[8:])
	if ps < 512 || ps > 1<<16 || ps&(ps-1) != 0 {
		return meta{}, fmt.Errorf("page size %d", ps)
	}
	return meta{pageSize: ps, pages: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}, nil
}

// checkHeader checks, without mapping the file, what bbolt trusts when it
// opens one: a missing or empty file is fine (it is created); otherwise
// one of the two meta pages must check out and the file must be as long
// as the pages that meta says are in use.
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: open %s: %w", path, err)
	}
	if info.Size() == 0 {
		return nil
	}
	readPage := func(off int64) []byte {
		b := make([]byte, pageHeaderSize+metaSize)
		n, _ := f.ReadAt(b, off)
		return b[:n]
	}
	m0, err0 := parseMeta(readPage(0))
	ps := int64(os.Getpagesize())
	if err0 == nil {
		ps = int64(m0.pageSize)
	}
	m1, err1 := parseMeta(readPage(ps))
	var m meta
	switch {
	case err0 == nil && (err1 != nil || m0.txid >= m1.txid):
		m = m0
	case err1 == nil:
		m = m1
	default:
		return fmt.Errorf("%w: %s: not a bbolt file, or both its meta pages are broken (%v; %v)", ErrDamaged, path, err0, err1)
	}
	if need := int64(m.pages) * int64(m.pageSize); info.Size() < need {
		return fmt.Errorf("%w: %s is truncated: %d bytes, but its pages need %d", ErrDamaged, path, info.Size(), need)
	}
	return nil
}

// Report is what Check found in a data file.
type Report struct {
	Pages    uint64   // pages in use
	Buckets  int      // buckets walked
	Keys     int      // keys read, in every bucket
	Problems []string // empty if the file is sound
	sum      uint32
}

// Check reads the whole data file at path read-only: its header, bbolt's
// own consistency check of every page, and every key and value of every
// bucket, with every session decoded (in either encoding). The problems it
// finds are in the Report; an error means the
// file could not be checked at all (ErrLocked while a server holds it).
func Check(path string, lockTimeout time.Duration) (*Report, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: check: %w", err)
	}
	rep := &Report{}
	if err := checkHeader(path); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		return rep, nil // mapping it could fault; nothing more can be read safely
	}
	var b *bolt.DB
	err := guarded("open", func() (err error) {
		b, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
		return err
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, path)
	}
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
		return rep, nil
	}
	defer b.Close()
	err = guarded("check", func() error {
		return b.View(func(tx *bolt.Tx) error {
			rep.Pages = uint64(tx.Size() / int64(b.Info().PageSize))
			for err := range tx.Check() {
				rep.Problems = append(rep.Problems, err.Error())
			}
			return nil
		})
	})
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	err = guarded("read", func() error {
		return b.View(func(tx *bolt.Tx) error {
			return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
				if string(name) == string(bucketSessions) {
					checkSessions(bk, rep)
				}
				return walk(bk, rep)
			})
		})
	})
	if err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	return rep, nil
}

// checkSessions reports each session value that does not decode.
func checkSessions(bk *bolt.Bucket, rep *Report) {
	bk.ForEach(func(k, v []byte) error {
		if _, err := decodeSession(v); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("session %q: %v", k, err))
		}
		return nil
	})
}

func walk(bk *bolt.Bucket, rep *Report) error {
	rep.Buckets++
	return bk.ForEach(func(k, v []byte) error {
		rep.Keys++
		if v == nil {
			if sub := bk.Bucket(k); sub != nil {
				return walk(sub, rep)
			}
		}
		rep.sum ^= crc32.ChecksumIEEE(v) // read every byte of the value
		return nil
	})
}
