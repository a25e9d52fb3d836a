package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

const seekHole = 4 // lseek's SEEK_HOLE on Linux

// TestRunwayKeepsRoomAhead saves sessions in many commits and checks that
// the file ends in zeroed, allocated space past bbolt's pages (no hole
// there for a commit to fill), and that everything saved reads back after
// a reopen and passes the file check.
func TestRunwayKeepsRoomAhead(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SEEK_HOLE is Linux's")
	}
	db, path := MustOpen(t)
	ctx := context.Background()
	const writers, each = 16, 100
	ref := strings.Repeat("r", 2000) // about 2 KiB a session: 3.2 MB in all
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				s := newSession(fmt.Sprintf("s-%02d-%04d", w, i), 1)
				s.Params.MerchantReference = ref
				if err := db.Save(ctx, &session.Change{Session: s}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	var high int64
	if err := db.view(func(tx *bolt.Tx) error { high = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	hole, err := f.Seek(high, seekHole)
	if err != nil {
		t.Fatal(err)
	}
	if hole != st.Size() {
		t.Errorf("a hole at %d, past the pages' end %d, before the file's end %d", hole, high, st.Size())
	}
	if room := st.Size() - high; room < ahead(high)/2-int64(writers)*4096 {
		t.Errorf("%d bytes past the pages' end %d; want about %d", room, high, ahead(high))
	}
	if db.runway.grown == 0 {
		t.Error("the runway wrote nothing")
	}

	db = reopen(t, db, path)
	for w := range writers {
		for i := range each {
			id := fmt.Sprintf("s-%02d-%04d", w, i)
			if s, err := db.Session(ctx, id); err != nil || s.Params.MerchantReference != ref {
				t.Fatalf("%s after reopen: %v", id, err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Check(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		t.Errorf("check: %v", rep.Problems)
	}
}

// TestRunwayWritesOnlyPastTheEnd gives the runway high-water marks it
// should not trust (one well short of the file's end, and a file grown
// behind its back, as bbolt grows it when a commit outruns the runway)
// and checks that it never writes over what the file holds.
func TestRunwayWritesOnlyPastTheEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	pages := bytes.Repeat([]byte{0xaa}, 1<<20)
	if err := os.WriteFile(path, pages, 0o600); err != nil {
		t.Fatal(err)
	}
	r := openRunway(path, nil)
	defer r.stop()

	r.keep(0) // a mark well short of the end: room enough, nothing to do
	if got := fileOf(t, path); !bytes.Equal(got, pages) {
		t.Fatalf("keep(0) changed the file: %d bytes", len(got))
	}

	high := int64(len(pages) - 4096)
	r.keep(high)
	got := fileOf(t, path)
	if want := high + ahead(high); int64(len(got)) != want {
		t.Errorf("size %d after keep(%d), want %d", len(got), high, want)
	}
	if !bytes.Equal(got[:len(pages)], pages) || bytes.ContainsFunc(got[len(pages):], func(r rune) bool { return r != 0 }) {
		t.Error("keep wrote over the pages, or other than zeros past them")
	}

	// bbolt writes past the runway's end, which the runway does not know.
	more := bytes.Repeat([]byte{0xbb}, 300<<10)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(more); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := fileOf(t, path)
	r.keep(int64(len(before)) - 4096)
	got = fileOf(t, path)
	if len(got) <= len(before) || !bytes.Equal(got[:len(before)], before) {
		t.Errorf("after the file grew behind its back, keep left %d bytes of %d, changed: %v",
			len(got), len(before), len(got) < len(before) || !bytes.Equal(got[:len(before)], before))
	}
}

// TestRunwayStopsOnFailure: a runway that cannot write (a full disk, say)
// stops, and leaves the file as it was.
func TestRunwayStopsOnFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data")
	pages := bytes.Repeat([]byte{0xaa}, 64<<10)
	if err := os.WriteFile(path, pages, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	var told []error
	r := &runway{f: f, end: int64(len(pages)), onError: func(err error) { told = append(told, err) }}
	r.keep(int64(len(pages)))
	if r.f != nil {
		t.Error("the runway goes on after a failed write")
	}
	r.keep(int64(len(pages))) // stopped: a no-op
	if len(told) != 1 || !strings.Contains(told[0].Error(), "bbolt grows the file itself") {
		t.Errorf("told of the failure: %v, want one error saying bbolt grows the file", told)
	}
	if got := fileOf(t, path); !bytes.Equal(got, pages) {
		t.Errorf("a failed runway changed the file: %d bytes", len(got))
	}
}

func fileOf(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkDiskCommit measures the disk under the runway's reasoning,
// outside bbolt: one op is a commit's writes, 16 pages then the meta
// page, each followed by fdatasync, with the pages appended into a hole
// (as bbolt's ftruncate leaves), into fallocate'd space, appended over
// zeros written and synced before (as the runway leaves), or spread over
// allocated blocks (as a move's pages land).
func BenchmarkDiskCommit(b *testing.B) {
	const size = 256 << 20
	for _, c := range []struct {
		name                      string
		zeroed, fallocate, spread bool
	}{{"hole", false, false, false}, {"fallocated", false, true, false}, {"zeroed", true, false, false}, {"spread", true, false, true}} {
		b.Run(c.name, func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "data"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if c.zeroed {
				zeros := make([]byte, 1<<20)
				for off := int64(0); off < size; off += int64(len(zeros)) {
					if _, err := f.WriteAt(zeros, off); err != nil {
						b.Fatal(err)
					}
				}
			} else if c.fallocate {
				if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
					b.Skipf("fallocate: %v", err)
				}
			} else if err := f.Truncate(size); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			page := bytes.Repeat([]byte{0xaa}, 4096)
			next, pages := int64(1), int64(size/4096)
			for i := 0; b.Loop(); i++ {
				for j := range int64(16) {
					at := next
					if c.spread {
						at = 1 + (int64(i)*16+j)*7919%(pages-1) // a prime stride: pages all over the file
					} else {
						next = next%(pages-1) + 1
					}
					if _, err := f.WriteAt(page, at*4096); err != nil {
						b.Fatal(err)
					}
				}
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					b.Fatal(err)
				}
				if _, err := f.WriteAt(page[:512], 0); err != nil {
					b.Fatal(err)
				}
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
