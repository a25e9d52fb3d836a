package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/session"
)

// A session's stored value is, in order:
//
//	version   4 bytes, big-endian: Save compares it without decoding
//	format    1 byte, codecBinary; a value whose fifth byte is '{' is the
//	          older JSON encoding, which decodeSession still reads (Save
//	          writes such a session back in this one)
//	fields    the Session's fields in the order of writeSession
//
// Each field is one of:
//
//	string, Type, Approval    uvarint length, then the bytes
//	[]byte, json.RawMessage   uvarint length+1, then the bytes; 0 is nil
//	int kinds, Amount         varint (zig-zag)
//	bool                      one byte, 0 or 1
//	time.Time                 varint seconds since 0001-01-01 UTC, then
//	                          uvarint nanoseconds: the zero time is 0 0;
//	                          read back in UTC (equal by time.Equal)
//	struct                    a record: uvarint length, then its fields
//	pointer to struct         uvarint length+1, then its fields; 0 is nil
//	pointer to int kind       a bool, then the varint if true
//	slice of struct           uvarint count, then each as a record
//
// Adding a field: append it to the end of its struct's list, in both
// writeX and readX, and read it only if r.more() (the record has bytes
// left), so that values written before it existed still decode with the
// field zero. A reader ignores bytes left over at the end of a record. A
// change that older binaries cannot read (any new field) raises
// FormatVersion, so that they refuse the file rather than misread it.
const codecBinary = 0x01

// Year one in Unix seconds: times are stored from it, so that the zero
// time costs two bytes.
const unixYearOne = -62135596800

func encodeSession(s *session.Session) ([]byte, error) {
	w := writer{b: make([]byte, 5, 512)}
	binary.BigEndian.PutUint32(w.b, uint32(s.Version))
	w.b[4] = codecBinary
	writeSession(&w, s)
	return w.b, nil
}

func writeSession(w *writer, s *session.Session) {
	w.string(s.ID)
	w.string(string(s.Type))
	w.string(s.MerchantID)
	w.int(s.Reference)
	w.bytes(s.TokenHash)
	w.int(int64(s.State))
	w.string(s.ErrorCode)
	w.int(int64(s.Amount))
	w.string(s.CurrencyID)
	w.string(s.CustomerID)
	w.string(s.TransactionID)
	w.optRecord(s.Bank != nil, func() {
		w.string(s.Bank.ID)
		w.string(s.Bank.Name)
	})
	w.string(s.BankIntegration)
	w.optRecord(s.BankAccount != nil, func() {
		a := s.BankAccount
		w.string(a.ID)
		w.string(a.Holder)
		w.string(a.IBAN)
		w.string(a.BBAN)
	})
	w.string(string(s.Approval))
	w.time(s.Created)
	w.time(s.Expires)
	w.time(s.Completed)
	w.time(s.LastRequest)
	w.string(s.IP)
	w.string(s.UserAgent)
	w.int(int64(s.Step))
	w.int(int64(s.Version))
	w.record(func() { writeParams(w, &s.Params) })
}

func writeParams(w *writer, p *session.Params) {
	w.bool(p.Amount != nil)
	if p.Amount != nil {
		w.string(string(*p.Amount))
	}
	w.string(p.CountryID)
	w.string(p.CurrencyID)
	w.string(p.MerchantReference)
	w.string(p.CustomerID)
	w.string(p.CustomerFirstname)
	w.string(p.CustomerLastname)
	w.string(p.CustomerEmail)
	w.string(p.CustomerDOB)
	w.string(p.CustomerStreetAddress)
	w.string(p.CustomerZip)
	w.string(p.CustomerCity)
	w.optRecord(p.CustomerAddress != nil, func() {
		a := p.CustomerAddress
		w.string(a.Street)
		w.string(a.PostalCode)
		w.string(a.City)
		w.string(a.CountryID)
	})
	w.string(p.SSN)
	w.string(p.Locale)
	w.string(p.BrandName)
	w.string(p.RedirectURI)
	w.string(p.DeeplinkRedirect)
	w.bool(p.ApprovalRequired)
	w.optRecord(p.ClosedLoop != nil, func() {
		c := p.ClosedLoop
		w.string(c.CustomerID)
		w.string(c.BankAccountID)
		w.string(c.NIN)
	})
	w.optRecord(p.Hint != nil, func() {
		w.string(p.Hint.CustomerID)
		w.string(p.Hint.BankAccountID)
	})
	w.string(p.StatementReference)
	w.string(p.RequestedStartDate)
	w.uint(uint64(len(p.Callbacks)))
	for i := range p.Callbacks {
		c := &p.Callbacks[i]
		w.record(func() {
			w.string(c.URL)
			w.bool(c.SessionState != nil)
			if c.SessionState != nil {
				w.int(int64(*c.SessionState))
			}
			w.bool(c.TransactionState != nil)
			if c.TransactionState != nil {
				w.int(int64(*c.TransactionState))
			}
		})
	}
	w.string(p.Role)
	w.bytes(p.Verifications)
	w.bytes(p.ViewState)
	w.string(p.BankID)
	w.string(p.CustomerReference)
	w.bytes(p.Metadata)
}

// decodeSession decodes a stored session value in either encoding.
func decodeSession(v []byte) (*session.Session, error) {
	if len(v) < 5 {
		return nil, fmt.Errorf("store: session value of %d bytes", len(v))
	}
	s := new(session.Session)
	switch v[4] {
	case codecBinary:
		d := decoding{str: string(v[5:])}
		r := reader{b: v[5:], v: &d}
		readSession(&r, s)
		if err := r.err(); err != nil {
			return nil, fmt.Errorf("store: decode session: %w", err)
		}
	case '{':
		if err := json.Unmarshal(v[4:], s); err != nil {
			return nil, fmt.Errorf("store: decode session: %w", err)
		}
	default:
		return nil, fmt.Errorf("store: decode session: unknown encoding %#x", v[4])
	}
	return s, nil
}

func readSession(r *reader, s *session.Session) {
	s.ID = r.string()
	s.Type = session.Type(r.string())
	s.MerchantID = r.string()
	s.Reference = r.int()
	s.TokenHash = r.bytes()
	s.State = session.State(r.int())
	s.ErrorCode = r.string()
	s.Amount = session.Amount(r.int())
	s.CurrencyID = r.string()
	s.CustomerID = r.string()
	s.TransactionID = r.string()
	if b, ok := r.optRecord(); ok {
		s.Bank = &session.Bank{ID: b.string(), Name: b.string()}
	}
	s.BankIntegration = r.string()
	if b, ok := r.optRecord(); ok {
		s.BankAccount = &session.BankAccount{ID: b.string(), Holder: b.string(), IBAN: b.string(), BBAN: b.string()}
	}
	s.Approval = session.Approval(r.string())
	s.Created = r.time()
	s.Expires = r.time()
	s.Completed = r.time()
	s.LastRequest = r.time()
	s.IP = r.string()
	s.UserAgent = r.string()
	s.Step = int(r.int())
	s.Version = int(r.int())
	params := r.record()
	readParams(&params, &s.Params)
}

func readParams(r *reader, p *session.Params) {
	if r.bool() {
		d := session.Decimal(r.string())
		p.Amount = &d
	}
	p.CountryID = r.string()
	p.CurrencyID = r.string()
	p.MerchantReference = r.string()
	p.CustomerID = r.string()
	p.CustomerFirstname = r.string()
	p.CustomerLastname = r.string()
	p.CustomerEmail = r.string()
	p.CustomerDOB = r.string()
	p.CustomerStreetAddress = r.string()
	p.CustomerZip = r.string()
	p.CustomerCity = r.string()
	if a, ok := r.optRecord(); ok {
		p.CustomerAddress = &session.Address{Street: a.string(), PostalCode: a.string(), City: a.string(), CountryID: a.string()}
	}
	p.SSN = r.string()
	p.Locale = r.string()
	p.BrandName = r.string()
	p.RedirectURI = r.string()
	p.DeeplinkRedirect = r.string()
	p.ApprovalRequired = r.bool()
	if c, ok := r.optRecord(); ok {
		p.ClosedLoop = &session.ClosedLoop{CustomerID: c.string(), BankAccountID: c.string(), NIN: c.string()}
	}
	if h, ok := r.optRecord(); ok {
		p.Hint = &session.Hint{CustomerID: h.string(), BankAccountID: h.string()}
	}
	p.StatementReference = r.string()
	p.RequestedStartDate = r.string()
	if n := r.count(); n > 0 {
		p.Callbacks = make([]session.Callback, n)
		for i := range p.Callbacks {
			c, cr := &p.Callbacks[i], r.record()
			c.URL = cr.string()
			if cr.bool() {
				st := session.State(cr.int())
				c.SessionState = &st
			}
			if cr.bool() {
				st := session.TransactionState(cr.int())
				c.TransactionState = &st
			}
		}
	}
	p.Role = r.string()
	p.Verifications = r.bytes()
	p.ViewState = r.bytes()
	p.BankID = r.string()
	p.CustomerReference = r.string()
	p.Metadata = r.bytes()
}

// sessionHead is what a read that selects sessions needs of one, decoded
// without the rest: no Params, and no copies of the strings it skips.
type sessionHead struct {
	MerchantID string
	State      session.State
	Created    time.Time
	Expires    time.Time
	Completed  time.Time
}

// decodeSessionHead decodes the head of a stored session value in either
// encoding; for the binary one it stops after Completed.
func decodeSessionHead(v []byte) (sessionHead, error) {
	var h sessionHead
	if len(v) < 5 {
		return h, fmt.Errorf("store: session value of %d bytes", len(v))
	}
	if v[4] != codecBinary {
		s, err := decodeSession(v)
		if err != nil {
			return h, err
		}
		return sessionHead{s.MerchantID, s.State, s.Created, s.Expires, s.Completed}, nil
	}
	// No copy of the whole value: merchant_id is copied alone.
	r := &reader{b: v[5:], v: new(decoding)}
	r.skip() // ID
	r.skip() // Type
	h.MerchantID = r.string()
	r.int()     // Reference
	r.skipOpt() // TokenHash
	h.State = session.State(r.int())
	r.skip()    // ErrorCode
	r.int()     // Amount
	r.skip()    // CurrencyID
	r.skip()    // CustomerID
	r.skip()    // TransactionID
	r.skipOpt() // Bank
	r.skip()    // BankIntegration
	r.skipOpt() // BankAccount
	r.skip()    // Approval
	h.Created, h.Expires, h.Completed = r.time(), r.time(), r.time()
	if err := r.err(); err != nil {
		return h, fmt.Errorf("store: decode session: %w", err)
	}
	return h, nil
}

// writer appends the fields of a value to b.
type writer struct{ b []byte }

func (w *writer) uint(x uint64) { w.b = binary.AppendUvarint(w.b, x) }
func (w *writer) int(x int64)   { w.b = binary.AppendVarint(w.b, x) }

func (w *writer) string(s string) {
	w.uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

func (w *writer) bytes(b []byte) {
	if b == nil {
		w.uint(0)
		return
	}
	w.uint(uint64(len(b)) + 1)
	w.b = append(w.b, b...)
}

func (w *writer) bool(x bool) {
	if x {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *writer) time(t time.Time) {
	w.int(t.Unix() - unixYearOne)
	w.uint(uint64(t.Nanosecond()))
}

// record writes what fields writes, prefixed by its length.
func (w *writer) record(fields func()) { w.lengthed(0, fields) }

// optRecord writes a record prefixed by its length plus one, or a 0 if
// the record is absent.
func (w *writer) optRecord(present bool, fields func()) {
	if !present {
		w.uint(0)
		return
	}
	w.lengthed(1, fields)
}

// lengthed writes fields after a one-byte placeholder, then puts its
// length plus add there, moving the fields if the length needs more bytes.
func (w *writer) lengthed(add uint64, fields func()) {
	at := len(w.b)
	w.b = append(w.b, 0)
	fields()
	n := uint64(len(w.b)-at-1) + add
	var buf [binary.MaxVarintLen64]byte
	l := binary.PutUvarint(buf[:], n)
	if l > 1 {
		w.b = append(w.b, buf[1:l]...) // room for the longer prefix
		copy(w.b[at+l:], w.b[at+1:len(w.b)-(l-1)])
	}
	copy(w.b[at:], buf[:l])
}

// reader reads the fields of a record from b. The first error of a
// value sticks (records of the value share it), and every read after it
// returns the zero value.
type reader struct {
	b   []byte
	off int // of b's start within the value
	v   *decoding
}

// decoding is what the readers of one value share. Strings are cut from
// str, one copy of the whole value, so that a decode allocates one string
// for all; with str empty each string is copied alone.
type decoding struct {
	str string
	err error
}

var errShort = errors.New("value ends early")

func (r *reader) err() error { return r.v.err }

func (r *reader) fail(err error) {
	if r.v.err == nil {
		r.v.err = err
	}
	r.b = nil
}

// more reports whether the record has bytes left: fields added to the end
// of a record are read only if so.
func (r *reader) more() bool { return r.v.err == nil && len(r.b) > 0 }

func (r *reader) uint() uint64 {
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.advance(n)
	return x
}

func (r *reader) int() int64 {
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.advance(n)
	return x
}

func (r *reader) advance(n int) {
	r.b = r.b[n:]
	r.off += n
}

// take returns the next n bytes (valid while the value is), or nil and an
// error if the record is shorter.
func (r *reader) take(n uint64) []byte {
	if r.v.err != nil || n > uint64(len(r.b)) {
		r.fail(errShort)
		return nil
	}
	b := r.b[:n:n]
	r.advance(int(n))
	return b
}

// skip passes over a string or a record.
func (r *reader) skip() { r.take(r.uint()) }

// skipOpt passes over a []byte or an optional record (length+1, or 0).
func (r *reader) skipOpt() {
	if n := r.uint(); n > 0 {
		r.take(n - 1)
	}
}

func (r *reader) string() string {
	n := r.uint()
	at := r.off
	b := r.take(n)
	switch {
	case n == 0 || b == nil:
		return ""
	case r.v.str == "":
		return string(b)
	}
	return r.v.str[at : at+int(n)]
}

func (r *reader) bytes() []byte {
	n := r.uint()
	if n == 0 {
		return nil
	}
	b := r.take(n - 1)
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

func (r *reader) bool() bool {
	b := r.take(1)
	if b == nil {
		return false
	}
	if b[0] > 1 {
		r.fail(fmt.Errorf("bool of %d", b[0]))
		return false
	}
	return b[0] == 1
}

func (r *reader) time() time.Time {
	sec, nsec := r.int(), r.uint()
	if r.v.err != nil {
		return time.Time{}
	}
	if nsec >= 1e9 {
		r.fail(fmt.Errorf("%d nanoseconds", nsec))
		return time.Time{}
	}
	return time.Unix(sec+unixYearOne, int64(nsec)).UTC()
}

// count reads the number of records that follow; each takes at least one
// byte, which bounds it.
func (r *reader) count() int {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return 0
	}
	return int(n)
}

// record returns a reader of the next record, and moves past it.
func (r *reader) record() reader { return r.sub(r.uint()) }

// optRecord returns a reader of the next optional record, and false if it
// is absent.
func (r *reader) optRecord() (reader, bool) {
	n := r.uint()
	if n == 0 || r.v.err != nil {
		return reader{}, false
	}
	return r.sub(n - 1), true
}

func (r *reader) sub(n uint64) reader {
	at := r.off
	return reader{b: r.take(n), off: at, v: r.v}
}
