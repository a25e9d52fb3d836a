package session

import (
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

// FuzzParseAmount: whatever the text, ParseAmount answers at once, an
// amount it accepts is non-negative, equals the text's value times 100
// exactly, and reads back from its own String.
func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"50", "50.5", "50.50", "5e1", "0.01", "1e-2", "1e99", "00", "-1", "1.005", "9999999999999999.99", "5E+1", "0.10e1", "10.00", "0", "0.", ".5", "1.2.3", "12a", "0.0100000000000000000000", "0.123", "99999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := ParseAmount(s)
		if ra, rok := parseAmountRat(s); a != ra || ok != rok {
			t.Fatalf("ParseAmount(%q) = %d, %v; parseAmountRat says %d, %v", s, a, ok, ra, rok)
		}
		if !ok {
			return
		}
		if a < 0 {
			t.Fatalf("ParseAmount(%q) = %d, negative", s, a)
		}
		r, ok := new(big.Rat).SetString(s)
		if !ok || r.Mul(r, big.NewRat(100, 1)).Cmp(big.NewRat(int64(a), 1)) != 0 {
			t.Fatalf("ParseAmount(%q) = %d, not the text's value in hundredths", s, a)
		}
		if back, ok := ParseAmount(a.String()); !ok || back != a {
			t.Fatalf("ParseAmount(%q) = %d, whose String %q reads back as %d, %v", s, a, a.String(), back, ok)
		}
	})
}

// FuzzDecimalUnmarshal: Decimal keeps what encoding/json reads, for a
// string (its contents, escapes decoded) or any other value (its text).
func FuzzDecimalUnmarshal(f *testing.F) {
	for _, s := range []string{`"10.00"`, `10.5`, `"1\u0030"`, `"a\"b"`, `true`, `"\u00e9"`, `""`, `"` + "\xff" + `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if !json.Valid([]byte(in)) {
			return // the decoder never hands UnmarshalJSON invalid JSON
		}
		want := Decimal(strings.Trim(in, " \t\r\n")) // the value, without the space around it
		var s string
		if json.Unmarshal([]byte(in), &s) == nil {
			want = Decimal(s)
		}
		var got Decimal
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Fatalf("Decimal of %s = %q, %v; want %q", in, got, err, want)
		}
	})
}
