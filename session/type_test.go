package session

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"
)

// allowed is the move table of API.md section 3, written out independently
// of the code's table: every move a type allows besides those to 10 and 11.
var allowed = map[Type]string{
	TypeDeposit:              "0>1 1>2 2>3 3>4 4>5 5>6 6>7 7>8 5>8 8>9 9>12",
	TypeRecurringPayment:     "0>1 1>2 2>3 3>4 4>5 5>6 6>7 7>8 5>8 8>9 9>12",
	TypeWithdrawal:           "0>1 1>2 2>3 3>4 4>12",
	TypeBankAccountSelection: "0>1 1>2 2>3 3>4 4>12",
	TypeAuthentication:       "0>1 1>2 2>12",
	TypeSwishPayment:         "0>1 1>2 2>3 3>4 4>5 5>6 6>7 7>8 5>8 8>9 9>12",
	TypeIdealPayment:         "0>1 1>2 2>3 3>4 4>5 5>6 6>7 7>8 5>8 8>9 9>12",
}

// TestTypeNumbers pins the wire numbers of API.md section 3's table: they
// are in every stored integration, so they never change.
func TestTypeNumbers(t *testing.T) {
	want := []string{"deposit", "recurring_payment", "withdrawal", "bank_account_selection", "authentication", "swish_payment", "ideal_payment"}
	if len(Types) != len(want) {
		t.Fatalf("%d types, want %d", len(Types), len(want))
	}
	for n, name := range want {
		typ := Type(name)
		if got := typ.Number(); got != n {
			t.Errorf("%s.Number() = %d, want %d", name, got, n)
		}
		for _, in := range []string{name, fmt.Sprint(n)} {
			if got, ok := TypeOf(in); !ok || got != typ {
				t.Errorf("TypeOf(%q) = %q, %v, want %q", in, got, ok, name)
			}
		}
	}
	for _, in := range []string{"", "7", "-1", "Deposit", "01"} {
		if got, ok := TypeOf(in); ok {
			t.Errorf("TypeOf(%q) = %q, want none", in, got)
		}
	}
	if got := Type("nope").Number(); got != -1 {
		t.Errorf("unknown type's Number() = %d, want -1", got)
	}
}

func TestMoveTable(t *testing.T) {
	for _, typ := range Types {
		want := map[string]bool{}
		for _, m := range strings.Fields(allowed[typ]) {
			want[m] = true
		}
		for from := State(-1); from <= 13; from++ {
			for to := State(-1); to <= 13; to++ {
				key := fmt.Sprintf("%d>%d", from, to)
				ok := want[key] || (from.Valid() && !from.Final() && (to == StateAborted || to == StateFailed))
				if got := typ.CanMove(from, to); got != ok {
					t.Errorf("%s.CanMove(%v, %v) = %v, want %v", typ, from, to, got, ok)
				}
			}
		}
	}
}

func TestSteps(t *testing.T) {
	tests := []struct {
		typ   Type
		total int
		steps map[State]int
	}{
		{TypeDeposit, 8, map[State]int{0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 5, 7: 5, 8: 6, 9: 7, 12: 8}},
		{TypeRecurringPayment, 8, map[State]int{0: 0, 5: 5, 8: 6, 12: 8}},
		{TypeWithdrawal, 5, map[State]int{0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 12: 5}},
		{TypeBankAccountSelection, 5, map[State]int{4: 4, 12: 5}},
		{TypeAuthentication, 3, map[State]int{0: 0, 1: 1, 2: 2, 12: 3}},
		{TypeSwishPayment, 8, map[State]int{0: 0, 5: 5, 6: 5, 8: 6, 12: 8}},
		{TypeIdealPayment, 8, map[State]int{0: 0, 5: 5, 7: 5, 9: 7, 12: 8}},
	}
	for _, tt := range tests {
		if got := tt.typ.TotalSteps(); got != tt.total {
			t.Errorf("%s.TotalSteps() = %d, want %d", tt.typ, got, tt.total)
		}
		for s, want := range tt.steps {
			if got, ok := tt.typ.step(s); !ok || got != want {
				t.Errorf("%s.step(%v) = %d, %v, want %d, true", tt.typ, s, got, ok, want)
			}
		}
		for _, s := range []State{StateAborted, StateFailed} {
			if _, ok := tt.typ.step(s); ok {
				t.Errorf("%s.step(%v) ok, want it to keep the step reached", tt.typ, s)
			}
		}
	}
}

func TestStateNames(t *testing.T) {
	if got, want := StateTransactionApprovalCompleted.String(), "STATE_TRANSACTION_APPROVAL_COMPLETED"; got != want {
		t.Errorf("State(9).String() = %q, want %q", got, want)
	}
	if got, want := TxSettled.String(), "STATE_SETTLED"; got != want {
		t.Errorf("TransactionState(6).String() = %q, want %q", got, want)
	}
	for s := StateCreated; s <= StateCompleted; s++ {
		if got, want := s.Final(), s >= 10; got != want {
			t.Errorf("%v.Final() = %v, want %v", s, got, want)
		}
	}
}

func TestAmount(t *testing.T) {
	for in, want := range map[string]Amount{"50": 5000, "50.5": 5050, "50.50": 5050, "0.01": 1, "1000000000": 100000000000, "1.500": 150,
		"1e3": 100000, "1.5E1": 1500, "1e-2": 1, "0": 0} {
		if got, ok := ParseAmount(in); !ok || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "-1", "1.234", "abc", "1e-3", ".5", "1.", "１", "01", "1e999", "0x10", "1/2", " 1"} {
		if got, ok := ParseAmount(in); ok {
			t.Errorf("ParseAmount(%q) = %d, ok; want not ok", in, got)
		}
	}
	if got, want := Amount(5000).String(), "50.00"; got != want {
		t.Errorf("Amount(5000) = %q, want %q", got, want)
	}
	if got, want := Amount(7).String(), "0.07"; got != want {
		t.Errorf("Amount(7) = %q, want %q", got, want)
	}
}

func TestToken(t *testing.T) {
	u, _ := newUUID(fixedNow, defaultRandom)
	id := formatUUID(u)
	if back, ok := parseUUID(id); !ok || back != u {
		t.Fatalf("parseUUID(formatUUID(u)) = %v, %v", back, ok)
	}
	if id[14] != '7' {
		t.Errorf("uuid %s is not version 7", id)
	}
	tok, err := newSessionToken(u, defaultRandom)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < 32 {
		t.Errorf("token %q shorter than 32", tok)
	}
	if got, ok := sessionIDOfToken(tok); !ok || got != id {
		t.Errorf("sessionIDOfToken = %q, %v, want %q", got, ok, id)
	}
	for _, bad := range []string{"", "x", tok[:42], tok + "A", strings.Repeat("!", 43)} {
		if _, ok := sessionIDOfToken(bad); ok {
			t.Errorf("sessionIDOfToken(%q) ok, want not ok", bad)
		}
	}
}

var fixedNow = mustTime("2026-11-22T10:00:00Z")

func mustTime(s string) (t time.Time) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// parseUUID reads the canonical form written by formatUUID.
func parseUUID(s string) (u [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, false
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, false
	}
	return u, true
}

// TestBankOf: BankOf finds each bank Banks lists, as Banks lists it, and
// nothing for an unknown id or country.
func TestBankOf(t *testing.T) {
	for _, country := range []string{"se", "fi"} {
		banks := Banks(country)
		if len(banks) == 0 {
			t.Fatalf("no banks in %s", country)
		}
		for _, want := range banks {
			if got, ok := BankOf(country, want.ID); !ok || got != want {
				t.Errorf("BankOf(%s, %s) = %+v, %v; want %+v", country, want.ID, got, ok, want)
			}
		}
		if b, ok := BankOf(country, "nosuchbank"); ok {
			t.Errorf("BankOf(%s, nosuchbank) = %+v", country, b)
		}
	}
	if b, ok := BankOf("xx", "testbank"); ok {
		t.Errorf("BankOf(xx, testbank) = %+v", b)
	}
}

// TestIBANCheckDigits: testIBAN's check digits are ISO 13616's, for
// published examples with digits only and with letters in the BBAN.
func TestIBANCheckDigits(t *testing.T) {
	for _, want := range []string{"SE4550000000058398257466", "GB82WEST12345698765432", "NO9386011117947", "DE89370400440532013000", "FI2112345600000785"} {
		if got := testIBAN(strings.ToLower(want[:2]), want[4:]); got != want {
			t.Errorf("testIBAN(%s, %s) = %s, want %s", want[:2], want[4:], got, want)
		}
	}
}
