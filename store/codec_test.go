package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sessiond/sessiond/session"
	bolt "go.etcd.io/bbolt"
)

// fill sets every field reachable from v (a pointer) to a non-zero value
// distinct from the others, so that a field the codec forgets, or reads
// into the wrong place, shows in a comparison.
func fill(t testing.TB, v reflect.Value, n *int) {
	t.Helper()
	*n++
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		// Nanoseconds and a zone that is not UTC: both must survive.
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(*n)*time.Hour + time.Duration(*n))
		v.Set(reflect.ValueOf(at.In(time.FixedZone("X", 3600*(*n%12)+60))))
		return
	case reflect.TypeFor[json.RawMessage]():
		v.SetBytes([]byte(fmt.Sprintf(`{"f":%d}`, *n)))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n) * 1000003) // several bytes of varint
	case reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte{byte(*n), 0, 255})
			return
		}
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range s.Len() {
			fill(t, s.Index(i), n)
		}
		v.Set(s)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), n)
		v.Set(p)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, v.Field(i), n)
		}
	default:
		t.Fatalf("fill: no case for %s (%s): teach fill, and the codec, this kind", v.Type(), v.Kind())
	}
}

func fullSession(t testing.TB) *session.Session {
	s := new(session.Session)
	n := 0
	fill(t, reflect.ValueOf(s).Elem(), &n)
	return s
}

func roundTrip(t *testing.T, s *session.Session) *session.Session {
	t.Helper()
	v, err := encodeSession(s)
	if err != nil {
		t.Fatal(err)
	}
	if v[4] != codecBinary {
		t.Fatalf("encoded with format byte %#x, want %#x", v[4], codecBinary)
	}
	got, err := decodeSession(v)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return got
}

// TestCodecEveryField: every field of a session, nested ones included,
// survives encode then decode; a field added to session.Session without
// codec support fails here.
func TestCodecEveryField(t *testing.T) {
	s := fullSession(t)
	got := roundTrip(t, s)
	if d := cmp.Diff(s, got); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if got.Created.Location() != time.UTC {
		t.Errorf("created comes back in %v, want UTC", got.Created.Location())
	}
	// Long fields need multi-byte lengths, also in the records around them.
	s.Params.Metadata = json.RawMessage(`"` + strings.Repeat("m", 70000) + `"`)
	s.Params.Callbacks[1].URL = strings.Repeat("u", 300)
	s.Bank.Name = strings.Repeat("b", 200)
	if d := cmp.Diff(s, roundTrip(t, s)); d != "" {
		t.Errorf("round trip with long fields (-want +got):\n%s", d)
	}
}

// TestCodecZero: the zero session comes back zero, with nil slices and
// pointers and zero times.
func TestCodecZero(t *testing.T) {
	got := roundTrip(t, &session.Session{})
	if !reflect.DeepEqual(got, &session.Session{}) {
		t.Errorf("zero session came back as %+v", got)
	}
	// Empty but not nil is kept apart from nil.
	s := &session.Session{TokenHash: []byte{}, Params: session.Params{Metadata: json.RawMessage{}}}
	got = roundTrip(t, s)
	if got.TokenHash == nil || got.Params.Metadata == nil || got.Params.ViewState != nil {
		t.Errorf("empty slices came back as %#v, %#v, %#v", got.TokenHash, got.Params.Metadata, got.Params.ViewState)
	}
}

// jsonValue is a session value as the older encoding wrote it.
func jsonValue(t testing.TB, s *session.Session) []byte {
	t.Helper()
	j, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{0, 0, 0, byte(s.Version)}, j...)
}

// TestCodecReadsJSON: a value in the older JSON encoding decodes as JSON
// does, and the decoded session round-trips through the new one unchanged.
func TestCodecReadsJSON(t *testing.T) {
	for name, s := range map[string]*session.Session{
		"full":  fullSession(t),
		"plain": newSession("s1", 3),
		"zero":  {},
	} {
		t.Run(name, func(t *testing.T) {
			v := jsonValue(t, s)
			want := new(session.Session)
			if err := json.Unmarshal(v[4:], want); err != nil {
				t.Fatal(err)
			}
			got, err := decodeSession(v)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("JSON value decoded (-want +got):\n%s", d)
			}
			if d := cmp.Diff(got, roundTrip(t, got)); d != "" {
				t.Errorf("JSON-decoded session through the new encoding (-want +got):\n%s", d)
			}
			h, err := decodeSessionHead(v)
			if err != nil {
				t.Fatal(err)
			}
			checkHead(t, h, want)
		})
	}
}

func checkHead(t *testing.T, h sessionHead, s *session.Session) {
	t.Helper()
	want := sessionHead{s.MerchantID, s.State, s.Created, s.Expires, s.Completed}
	if d := cmp.Diff(want, h, cmp.AllowUnexported(sessionHead{})); d != "" {
		t.Errorf("head (-want +got):\n%s", d)
	}
}

// TestCodecHead: the partial decode agrees with the full one.
func TestCodecHead(t *testing.T) {
	for _, s := range []*session.Session{fullSession(t), newSession("s1", 2), {}} {
		v, _ := encodeSession(s)
		h, err := decodeSessionHead(v)
		if err != nil {
			t.Fatal(err)
		}
		checkHead(t, h, s)
	}
}

// TestCodecDamaged: a cut or unknown value is an error, never a panic or
// a session.
func TestCodecDamaged(t *testing.T) {
	v, _ := encodeSession(fullSession(t))
	for n := range len(v) {
		if _, err := decodeSession(v[:n]); err == nil {
			t.Fatalf("a value cut to %d of %d bytes decoded", n, len(v))
		}
	}
	bad := append([]byte(nil), v...)
	bad[4] = 0x7f
	if _, err := decodeSession(bad); err == nil || !strings.Contains(err.Error(), "unknown encoding") {
		t.Errorf("unknown format byte: %v", err)
	}
}

// FuzzDecodeSession: no input makes decoding panic, and what decodes
// encodes and decodes again to the same session.
func FuzzDecodeSession(f *testing.F) {
	v, _ := encodeSession(fullSession(f))
	f.Add(v)
	v, _ = encodeSession(newSession("s1", 1))
	f.Add(v)
	f.Add(jsonValue(f, newSession("s1", 1)))
	f.Add([]byte{0, 0, 0, 1, codecBinary})
	f.Fuzz(func(t *testing.T, v []byte) {
		decodeSessionHead(v)
		s, err := decodeSession(v)
		if err != nil {
			return
		}
		if d := cmp.Diff(s, roundTrip(t, s)); d != "" {
			t.Errorf("decoded session through the codec again (-first +second):\n%s", d)
		}
	})
}

// TestOpenJSONSessions: a file of format 1, whose sessions are JSON,
// opens (and is recorded as the current format); its sessions read back
// as they were, through each read; each is written in the binary encoding
// at its next save, the others stay as they are; Check passes the file
// before, between and after, and reports a session value that does not
// decode.
func TestOpenJSONSessions(t *testing.T) {
	db, path := MustOpen(t)
	ctx := context.Background()
	full := fullSession(t)
	full.ID, full.Version, full.State, full.Params.MerchantReference = "s0", 1, session.StateCreated, "order-1"
	full.MerchantID, full.Expires = "m1", t0.Add(time.Minute) // claimed first
	sessions := []*session.Session{full, newSession("s1", 1), newSession("s2", 1)}
	for _, s := range sessions {
		if err := db.Save(ctx, &session.Change{Session: s}); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	// Rewrite it as the older binary left it: JSON values, format 1.
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], 1)
		if err := tx.Bucket(bucketMeta).Put(keyFormat, buf[:]); err != nil {
			return err
		}
		for _, s := range sessions {
			if err := tx.Bucket(bucketSessions).Put([]byte(s.ID), jsonValue(t, s)); err != nil {
				return err
			}
		}
		return nil
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		rep, err := Check(path, time.Second)
		if err != nil || len(rep.Problems) > 0 {
			t.Fatalf("Check %s: %+v, %v", when, rep, err)
		}
	}
	check("the JSON file")

	if db, err = Open(path, Options{}); err != nil {
		t.Fatalf("open a format 1 file: %v", err)
	}
	defer db.Close()
	var v uint64
	db.bolt.View(func(tx *bolt.Tx) error { v = storedFormat(tx); return nil })
	if v != FormatVersion {
		t.Errorf("format %d after open, want %d", v, FormatVersion)
	}
	want := make([]*session.Session, len(sessions))
	for i, s := range sessions {
		want[i] = new(session.Session)
		json.Unmarshal(jsonValue(t, s)[4:], want[i])
		got, err := db.Session(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want[i], got); d != "" {
			t.Errorf("session %s read back (-want +got):\n%s", s.ID, d)
		}
	}
	byRef, err := db.SessionsByReference(ctx, "m1", "order-1", 10)
	if err != nil || len(byRef) != 3 {
		t.Fatalf("SessionsByReference: %d, %v; want 3", len(byRef), err)
	}
	due, err := db.ClaimDue(ctx, "o", t0.Add(2*time.Hour), time.Minute, 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("ClaimDue: %d, %v; want 3", len(due), err)
	}
	for _, s := range due {
		if d := cmp.Diff(want[s.ID[1]-'0'], s); d != "" {
			t.Errorf("claimed session %s (-want +got):\n%s", s.ID, d)
		}
	}

	// Save s0 at its next version; s1 is only touched; s2 is left alone.
	next := *due[0]
	next.Version, next.State = 2, session.StateAuthenticationStarted
	if next.ID != "s0" {
		t.Fatalf("claimed %s first, want s0", next.ID)
	}
	if err := db.Save(ctx, &session.Change{Session: &next}); err != nil {
		t.Fatal(err)
	}
	if err := db.Touch(ctx, "s1", t0.Add(time.Minute), session.Client{IP: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	db.FlushTouches()
	formats := map[string]byte{}
	db.bolt.View(func(tx *bolt.Tx) error {
		for _, s := range sessions {
			formats[s.ID] = tx.Bucket(bucketSessions).Get([]byte(s.ID))[4]
		}
		return nil
	})
	if formats["s0"] != codecBinary || formats["s1"] != codecBinary || formats["s2"] != '{' {
		t.Errorf("format bytes after save and touch %q, want s0 and s1 binary, s2 still JSON", formats)
	}
	if got, err := db.Session(ctx, "s0"); err != nil || cmp.Diff(&next, got) != "" {
		t.Errorf("s0 after its save: %v (-want +got):\n%s", err, cmp.Diff(&next, got))
	}
	if got, err := db.Session(ctx, "s1"); err != nil || !got.LastRequest.Equal(t0.Add(time.Minute)) || got.IP != "192.0.2.1" {
		t.Errorf("s1 after its touch: %+v, %v", got, err)
	}
	db.Close()
	check("with both encodings")

	b, _ = bolt.Open(path, 0o600, nil)
	b.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).Put([]byte("s2"), []byte{0, 0, 0, 1, codecBinary, 9})
	})
	b.Close()
	rep, err := Check(path, time.Second)
	if err != nil || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], `session "s2"`) {
		t.Errorf("Check of a file with a broken session: %+v, %v; want one problem naming s2", rep, err)
	}
}
