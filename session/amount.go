package session

import (
	"bytes"
	"encoding/json"
	"math/big"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// Amount is a sum of money in hundredths of the currency unit. On the wire
// it is a JSON number with exactly two decimals.
type Amount int64

// MaxAmount is the largest amount a session may carry: 1 000 000 000.
const MaxAmount Amount = 1_000_000_000_00

// MarshalJSON writes a like 50.00.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalJSON reads what MarshalJSON writes.
func (a *Amount) UnmarshalJSON(b []byte) error {
	v, ok := ParseAmount(string(b))
	if !ok {
		return &json.UnsupportedValueError{Str: string(b)}
	}
	*a = v
	return nil
}

// String returns a with two decimals, like 50.00.
func (a Amount) String() string {
	sign := ""
	if a < 0 {
		sign, a = "-", -a
	}
	return sign + strconv.FormatInt(int64(a/100), 10) + "." + strconv.FormatInt(int64(a%100/10), 10) + strconv.FormatInt(int64(a%10), 10)
}

// amountSyntax is a non-negative JSON number (no leading zeros, a short
// exponent at most, so that no input makes a huge number).
var amountSyntax = regexp.MustCompile(`^(0|[1-9][0-9]{0,15})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?$`)

// maxParsed is the largest amount whose String amountSyntax accepts (16
// digits before the point), so that any amount read can be read again
// from what it writes ("1e16" is refused, not read as an amount that
// writes 17 digits).
const maxParsed = 9_999_999_999_999_999_99

// ParseAmount reads a non-negative JSON number that is a whole number of
// hundredths ("50", "50.5", "50.500", "5e1"), as an Amount.
func ParseAmount(s string) (Amount, bool) {
	if a, ok, plain := parsePlainAmount(s); plain {
		return a, ok
	}
	return parseAmountRat(s)
}

// parsePlainAmount reads the amounts that clients send, digits with at
// most one point ("50", "10.00"), without the regexp and big.Rat that
// parseAmountRat takes; plain is false for any other text, which
// parseAmountRat reads. It accepts what parseAmountRat accepts (a fuzz test
// compares them).
func parsePlainAmount(s string) (a Amount, ok, plain bool) {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	whole, frac := s[:i], ""
	if i < len(s) {
		if s[i] != '.' {
			return 0, false, false
		}
		frac = s[i+1:]
		for j := 0; j < len(frac); j++ {
			if frac[j] < '0' || '9' < frac[j] {
				return 0, false, false
			}
		}
		if frac == "" || len(frac) > 20 {
			return 0, false, true
		}
	}
	if whole == "" || len(whole) > 16 || (len(whole) > 1 && whole[0] == '0') {
		return 0, false, true
	}
	var v int64
	for j := 0; j < len(whole); j++ {
		v = v*10 + int64(whole[j]-'0')
	}
	for j := 0; j < 2; j++ {
		v *= 10
		if j < len(frac) {
			v += int64(frac[j] - '0')
		}
	}
	for j := 2; j < len(frac); j++ {
		if frac[j] != '0' {
			return 0, false, true // not a whole number of hundredths
		}
	}
	return Amount(v), v <= maxParsed, true
}

// parseAmountRat reads any text amountSyntax allows, exponents included.
func parseAmountRat(s string) (Amount, bool) {
	if !amountSyntax.MatchString(s) {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, false
	}
	r.Mul(r, big.NewRat(100, 1))
	if !r.IsInt() || !r.Num().IsInt64() || r.Num().Int64() > maxParsed {
		return 0, false
	}
	return Amount(r.Num().Int64()), true
}

// Decimal is an amount as the client gave it: a JSON number or a numeric
// string, kept as text until it is validated.
type Decimal string

// UnmarshalJSON keeps the text of a number, or the contents of a string;
// anything else is kept as is and fails validation later.
func (d *Decimal) UnmarshalJSON(b []byte) error {
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && !bytes.ContainsAny(b[1:n-1], `"\\`) && utf8.Valid(b) {
		*d = Decimal(b[1 : n-1]) // a string without escapes: its text as it is
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*d = Decimal(s)
		return nil
	}
	*d = Decimal(b)
	return nil
}

// MarshalJSON writes the amount as the string it was given as.
func (d Decimal) MarshalJSON() ([]byte, error) { return json.Marshal(string(d)) }
