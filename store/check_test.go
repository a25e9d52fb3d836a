package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
)

// soundFile returns the pages of a closed data file with one merchant:
// its bytes without the runway's zeros past them, so that cutting them
// short cuts the pages.
func soundFile(tb testing.TB) []byte {
	tb.Helper()
	db, path := MustOpen(tb)
	m := &session.Merchant{ID: "01a20000-0000-7000-8000-000000000001", Name: "shop", PublicKey: "pk_1", CallbackSecret: "whsec_x"}
	if err := db.CreateMerchant(context.Background(), m); err != nil {
		tb.Fatal(err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	rep, err := Check(path, time.Second)
	if err != nil || len(rep.Problems) > 0 {
		tb.Fatalf("check of the sound file: %+v, %v", rep, err)
	}
	return b[:rep.Pages*uint64(os.Getpagesize())]
}

// TestOpenChecksHeader: Open refuses a truncated file or one whose meta
// pages are broken with ErrDamaged, before bbolt maps it; Check reports
// the same; a sound file checks clean.
func TestOpenChecksHeader(t *testing.T) {
	data := soundFile(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"sound", data, true},
		{"empty", nil, true},
		{"truncated to half", data[:len(data)/2], false},
		{"truncated to one page", data[:4096], false},
		{"truncated mid-meta", data[:40], false},
		{"meta pages zeroed", append(make([]byte, 8192), data[8192:]...), false},
	} {
		path := filepath.Join(dir, tc.name+".db")
		if err := os.WriteFile(path, tc.data, 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := Open(path, Options{})
		if err == nil {
			db.Close()
		}
		if (err == nil) != tc.ok || (!tc.ok && !errors.Is(err, ErrDamaged)) {
			t.Errorf("%s: Open: %v, want ok %v (else ErrDamaged)", tc.name, err, tc.ok)
		}
		rep, err := Check(path, time.Second)
		if err != nil || (len(rep.Problems) == 0) != tc.ok {
			t.Errorf("%s: Check: %+v, %v; want problems %v", tc.name, rep, err, !tc.ok)
		}
	}
}

// FuzzOpen opens arbitrary bytes as a data file: Open and the reads after
// it may fail, but never crash the process.
func FuzzOpen(f *testing.F) {
	data := soundFile(f)
	f.Add(data)
	f.Add(data[:len(data)/2])
	f.Add([]byte{})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "fuzz.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		db, err := Open(path, Options{LockTimeout: time.Second})
		if err != nil {
			return
		}
		ctx := context.Background()
		db.Merchants(ctx)
		db.MerchantByPublicKey(ctx, "pk_1")
		db.Session(ctx, "01a20000-0000-7000-8000-000000000001")
		db.Close()
	})
}
