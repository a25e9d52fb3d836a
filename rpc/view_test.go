package rpc

import (
	"encoding/json"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// TestBankAccountAbsentIsNull: a picked account given with an IBAN only
// reads back with a null BBAN and holder, as every absent value is on the
// wire, never "".
func TestBankAccountAbsentIsNull(t *testing.T) {
	b, err := json.Marshal(bankAccountOf(&session.BankAccount{ID: "ba_1", IBAN: "SE4550000000058398257466"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"id":"ba_1","holder":null,"iban":"SE4550000000058398257466","bban":null}`; got != want {
		t.Errorf("bank_account = %s, want %s", got, want)
	}
	if b, _ := json.Marshal(bankAccountOf(nil)); string(b) != "null" {
		t.Errorf("no account = %s, want null", b)
	}
}
