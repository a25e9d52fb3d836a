package session

import (
	"encoding/json"
	"strconv"
	"strings"
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

// ParseAmount reads a plain non-negative decimal with at most two
// significant decimals ("50", "50.5", "50.50", "50.500").
func ParseAmount(s string) (Amount, bool) {
	whole, frac, dot := strings.Cut(s, ".")
	if dot && frac == "" {
		return 0, false
	}
	frac = strings.TrimRight(frac, "0")
	if whole == "" || len(whole) > 12 || len(frac) > 2 || !digits(whole) || !digits(frac) {
		return 0, false
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, false
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	return Amount(w*100 + f), true
}

func digits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Decimal is an amount as the client gave it: a JSON number or a numeric
// string, kept as text until it is validated.
type Decimal string

// UnmarshalJSON keeps the text of a number, or the contents of a string;
// anything else is kept as is and fails validation later.
func (d *Decimal) UnmarshalJSON(b []byte) error {
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
