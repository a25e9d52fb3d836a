package store

import (
	"fmt"
	"os"
)

// runway keeps zeroed, synced space past the last of bbolt's pages.
//
// bbolt grows its file with ftruncate, which leaves a hole: the pages a
// commit then writes into it make the file system allocate their blocks,
// and the commit's fdatasync has to journal that allocation besides
// writing the pages. On ext4 that made a commit that appends pages half
// again as slow as one that overwrites blocks already allocated. So the
// committer, between transactions, keeps the end of the file a little
// ahead of bbolt's high-water mark: it writes zeros past the end and
// fsyncs them, size included, as bbolt's own growth does, before any page
// can land there. bbolt (1.5, as go.mod has it) asks the file for its size
// before growing it, so it then finds room and neither truncates nor syncs.
//
// The runway only ever writes past the file's end, as the file system
// reports it at that moment: every page bbolt has written lies before the
// end, so nothing stored can be overwritten, whatever the high-water mark
// it was told. Should a commit outrun the runway, bbolt grows the file as
// it always has.
type runway struct {
	f       *os.File // the data file, apart from bbolt's handle; nil: stopped
	end     int64    // the file's size, as last made or seen here
	grown   int64    // bytes of zeros written, for tests
	zeros   []byte
	onError func(error) // told why the runway stopped; may be nil
}

const (
	runwayMin = 256 << 10 // the least room kept ahead
	runwayMax = 2 << 20   // the most; an extension is half of it or more, some 4-8 ms of this disk
)

// openRunway opens the data file at path for the runway; a file it cannot
// open gets none, and bbolt grows it as it would. onError, if set, is told
// why the runway did not start or stopped.
func openRunway(path string, onError func(error)) *runway {
	r := &runway{onError: onError}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		r.fail(err)
		return r
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		r.fail(err)
		return r
	}
	r.f, r.end = f, st.Size()
	return r
}

// ahead is the room to keep past a high-water mark of high bytes: an
// eighth of the data, within runwayMin and runwayMax, so a small file stays
// small.
func ahead(high int64) int64 {
	return min(max(high/8, runwayMin), runwayMax) &^ (4<<10 - 1)
}

// keep makes room past high, the end of bbolt's pages as of the last
// commit, if less than half of ahead(high) is left. It runs on the
// committer, between transactions, so no page is being written meanwhile.
// A failure (a full disk, say) stops the runway: bbolt grows the file
// itself from then on.
func (r *runway) keep(high int64) {
	if r.f == nil {
		return
	}
	want := ahead(high)
	if r.end-high >= want/2 {
		return
	}
	st, err := r.f.Stat() // bbolt may have grown the file since
	if err != nil {
		r.fail(err)
		return
	}
	r.end = st.Size()
	if r.end-high >= want/2 {
		return
	}
	n := min(high+want-r.end, runwayMax)
	if r.zeros == nil {
		r.zeros = make([]byte, runwayMax)
	}
	if _, err := r.f.WriteAt(r.zeros[:n], r.end); err != nil {
		r.fail(err)
		return
	}
	if err := r.f.Sync(); err != nil {
		r.fail(err)
		return
	}
	r.end += n
	r.grown += n
}

// fail stops the runway for err and says so.
func (r *runway) fail(err error) {
	r.stop()
	if r.onError != nil {
		r.onError(fmt.Errorf("store: zeroed room past the data stopped (bbolt grows the file itself from now on; writes are unaffected): %w", err))
	}
}

func (r *runway) stop() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}
