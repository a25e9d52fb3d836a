package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// apiCall calls a method Brite-style, POST /api/<method> with the params
// as the body, as Brite integrations do, and returns the HTTP status and
// the body.
func apiCall(t *testing.T, url, bearer, method string, params any) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(params)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/api/"+method, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return resp.StatusCode, out
}

// mustAPI calls a method on /api and decodes its result into out, failing
// the test on anything but HTTP 200.
func mustAPI(t *testing.T, url, bearer, method string, params, out any) {
	t.Helper()
	status, body := apiCall(t, url, bearer, method, params)
	if status != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", method, status, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s: %v in %s", method, err, body)
		}
	}
}

// The records a typed Brite client (C#, Flow) decodes session.get and
// transaction.get into: a string where a number is expected fails to
// decode, as System.Text.Json fails on "type":"deposit" for an int?.
type typedSession struct {
	ID                string            `json:"id"`
	Type              int               `json:"type"`
	TypeName          string            `json:"type_name"`
	Reference         int64             `json:"reference"`
	State             int               `json:"state"`
	StateName         string            `json:"state_name"`
	Amount            float64           `json:"amount"`
	CurrencyID        string            `json:"currency_id"`
	CountryID         string            `json:"country_id"`
	TransactionID     *string           `json:"transaction_id"`
	BankID            *string           `json:"bank_id"`
	BankIntegrationID *string           `json:"bank_integration_id"`
	BankAccountID     *string           `json:"bank_account_id"`
	CustomerID        *string           `json:"customer_id"`
	CustomerReference *string           `json:"customer_reference"`
	Metadata          map[string]string `json:"metadata"`
	Created           float64           `json:"created"`
	Completed         *float64          `json:"completed"`
	Expires           float64           `json:"expires"`
	CurrentStep       int               `json:"current_step"`
	TotalSteps        int               `json:"total_steps"`
	Version           int               `json:"version"`
}

type typedAccount struct {
	BankName  *string `json:"bank_name"`
	CountryID string  `json:"country_id"`
	IBAN      *string `json:"iban"`
}

type typedTransaction struct {
	ID                    string        `json:"id"`
	Type                  int           `json:"type"`
	TypeName              string        `json:"type_name"`
	State                 int           `json:"state"`
	StateName             string        `json:"state_name"`
	Amount                float64       `json:"amount"`
	CurrencyID            string        `json:"currency_id"`
	SessionID             *string       `json:"session_id"`
	BankAccountID         *string       `json:"bank_account_id"`
	FromBankAccountID     *string       `json:"from_bank_account_id"`
	ToBankAccountID       *string       `json:"to_bank_account_id"`
	FromBankAccount       *typedAccount `json:"from_bank_account"`
	ToBankAccount         *typedAccount `json:"to_bank_account"`
	Message               *string       `json:"message"`
	OriginalTransactionID *string       `json:"original_transaction_id"`
	Created               float64       `json:"created"`
	Approved              *float64      `json:"approved"`
	Completed             *float64      `json:"completed"`
	Settled               *float64      `json:"settled"`
	ETA                   *float64      `json:"eta"`
}

// readTransaction reads a transaction, which must be in state.
func readTransaction(t *testing.T, url, bearer, id string, state int) typedTransaction {
	t.Helper()
	var tx typedTransaction
	mustAPI(t, url, bearer, "transaction.get", map[string]string{"id": id}, &tx)
	if tx.State != state {
		t.Fatalf("transaction %s at %d (%s), want %d", id, tx.State, tx.StateName, state)
	}
	return tx
}

// waitCallbacks waits until the receiver has a transaction callback for
// each of the (transaction id, state) pairs, or fails after 30s.
func waitCallbacks(t *testing.T, r *receiver, want map[string][]int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		r.mu.Lock()
		got := map[string]map[int]bool{}
		for _, cb := range r.got {
			if cb.TransactionState != nil {
				if got[cb.TransactionID] == nil {
					got[cb.TransactionID] = map[int]bool{}
				}
				got[cb.TransactionID][*cb.TransactionState] = true
			}
		}
		r.mu.Unlock()
		missing := ""
		for id, states := range want {
			for _, st := range states {
				if !got[id][st] {
					missing += fmt.Sprintf(" %s@%d", id, st)
				}
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("callbacks missing:%s", missing)
		}
	}
}

// TestBriteFlow runs what a Brite integration runs, on /api only, against
// the binary in sandbox mode: authorize, bank.list, a deposit with bank_id
// and metadata walked by the end user's moves, its callbacks on a real
// receiver, the transaction read until settled, a partial refund, and a
// payout with approval to the account the deposit came from.
func TestBriteFlow(t *testing.T) {
	rcv := newReceiver(t)
	db := filepath.Join(t.TempDir(), "sessiond.db")
	p := startServer(t, "--db", db, "--merchant", "pk_brite:sk_brite:"+e2eWhsec, "--sandbox", "--sandbox-delay", "100ms", "--callback-allow-private")
	var tokens struct {
		AccessToken string  `json:"access_token"`
		Expires     float64 `json:"expires"`
	}
	mustAPI(t, p.url, "", "merchant.authorize", map[string]string{"public_key": "pk_brite", "secret": "sk_brite"}, &tokens)
	bearer := tokens.AccessToken

	var banks struct {
		Banks []struct{ ID, Name, Logo string }
	}
	mustAPI(t, p.url, bearer, "bank.list", map[string]string{"country_id": "SE"}, &banks)
	if len(banks.Banks) < 3 {
		t.Fatalf("bank.list: %d banks, want at least 3", len(banks.Banks))
	}
	bank := banks.Banks[1]
	if resp, err := http.Get(bank.Logo); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("bank logo %s: %v %v", bank.Logo, resp, err)
	} else {
		resp.Body.Close()
	}

	cb := func(states ...int) []map[string]any {
		var out []map[string]any
		for _, s := range states {
			out = append(out, map[string]any{"url": rcv.srv.URL + "/brite", "transaction_state": s})
		}
		return out
	}
	var created struct{ ID, Token, URL string }
	mustAPI(t, p.url, bearer, "session.create_deposit", map[string]any{
		"amount": "100.00", "country_id": "SE", "merchant_reference": "order-e2e", "customer_id": "player-e2e",
		"customer_reference": "crm-e2e", "bank_id": bank.ID,
		"metadata":  map[string]string{"customer_id": "player-e2e", "session_id": "ps_1", "project_slug": "shop"},
		"callbacks": append(cb(0, 4, 5, 6), map[string]any{"url": rcv.srv.URL + "/brite", "session_state": 12}),
		"cart_id":   "ignored-by-the-server",
	}, &created)

	for _, mv := range []map[string]any{
		{"state": 1}, {"state": 2, "customer_id": "player-e2e"}, {"state": 3},
		{"state": 4, "bank_account": map[string]string{"holder": "Player E2E", "iban": "SE4550000000058398257466"}},
		{"state": 5}, {"state": 8}, {"state": 9}, {"state": 12},
	} {
		mv["token"] = created.Token
		mustAPI(t, p.url, "", "client.transition", mv, nil)
	}

	var s typedSession
	mustAPI(t, p.url, bearer, "session.get", map[string]string{"id": created.ID}, &s)
	switch {
	case s.Type != 0 || s.TypeName != "deposit" || s.State != 12 || s.Reference <= 0 || s.Amount != 100:
		t.Fatalf("session: %+v", s)
	case s.BankID == nil || *s.BankID != bank.ID || s.BankIntegrationID == nil || s.CountryID != "se":
		t.Fatalf("session's bank: %+v, want the preselected %s", s, bank.ID)
	case s.Metadata["project_slug"] != "shop" || s.CustomerReference == nil || *s.CustomerReference != "crm-e2e":
		t.Fatalf("session's metadata and customer_reference: %+v", s)
	case s.TransactionID == nil || s.BankAccountID == nil:
		t.Fatalf("session without transaction or bank account: %+v", s)
	}
	var byToken typedSession
	mustAPI(t, p.url, "", "session.get_by_token", map[string]string{"token": created.Token}, &byToken)
	if byToken.ID != s.ID || byToken.Version != s.Version {
		t.Errorf("get_by_token without a bearer: %+v, want session %s", byToken, s.ID)
	}

	// The receiver hears of each move; the integration reads the
	// transaction again when told it settled.
	waitCallbacks(t, rcv, map[string][]int{*s.TransactionID: {0, 4, 5, 6}})
	deposit := readTransaction(t, p.url, bearer, *s.TransactionID, 6)
	if deposit.Type != 0 || deposit.Settled == nil || deposit.FromBankAccountID == nil || *deposit.FromBankAccountID != *s.BankAccountID ||
		deposit.FromBankAccount == nil || deposit.FromBankAccount.BankName == nil || *deposit.FromBankAccount.BankName != bank.Name || deposit.Message == nil {
		t.Errorf("settled deposit: %+v", deposit)
	}

	var refund struct{ ID string }
	mustAPI(t, p.url, bearer, "transaction.create_refund", map[string]any{
		"transaction_id": deposit.ID, "amount": "40.00", "merchant_reference": "refund-e2e", "callbacks": cb(1, 6),
	}, &refund)
	if status, body := apiCall(t, p.url, bearer, "transaction.create_refund", map[string]any{"transaction_id": deposit.ID, "amount": "60.01"}); status != http.StatusBadRequest || !bytes.Contains(body, []byte(`"TransactionInvalid"`)) {
		t.Errorf("refund past the deposit: HTTP %d %s, want 400 TransactionInvalid", status, body)
	}
	waitCallbacks(t, rcv, map[string][]int{refund.ID: {1, 6}})
	r := readTransaction(t, p.url, bearer, refund.ID, 6)
	if r.Type != 2 || r.OriginalTransactionID == nil || *r.OriginalTransactionID != deposit.ID || r.Amount != 40 || r.Settled == nil || r.ETA == nil {
		t.Errorf("settled refund: %+v", r)
	}

	var accounts struct {
		BankAccounts []struct{ ID, IBAN string } `json:"bank_accounts"`
	}
	mustAPI(t, p.url, bearer, "bank_account.list", map[string]string{"customer_id": "player-e2e"}, &accounts)
	if len(accounts.BankAccounts) != 1 || accounts.BankAccounts[0].ID != *s.BankAccountID {
		t.Fatalf("bank accounts of player-e2e: %+v, want the one the deposit used (%s)", accounts.BankAccounts, *s.BankAccountID)
	}
	var payout struct {
		ID  string
		ETA *float64
	}
	mustAPI(t, p.url, bearer, "transaction.create_withdrawal", map[string]any{
		"amount": "30.00", "bank_account_id": accounts.BankAccounts[0].ID, "merchant_reference": "payout-e2e",
		"approval_required": true, "callbacks": cb(0, 1, 6),
	}, &payout)
	if payout.ETA != nil {
		t.Errorf("payout awaiting approval has eta %v, want null", *payout.ETA)
	}
	var approved struct {
		State int
		ETA   *float64
	}
	mustAPI(t, p.url, bearer, "transaction.approve", map[string]string{"id": payout.ID}, &approved)
	if approved.State != 1 || approved.ETA == nil {
		t.Errorf("approved payout: %+v, want state 1 with an eta", approved)
	}
	waitCallbacks(t, rcv, map[string][]int{payout.ID: {0, 1, 6}})
	w := readTransaction(t, p.url, bearer, payout.ID, 6)
	if w.Type != 1 || w.ToBankAccountID == nil || *w.ToBankAccountID != *s.BankAccountID || w.Approved == nil || w.Settled == nil {
		t.Errorf("settled payout: %+v", w)
	}

	var list struct {
		Transactions []struct{ ID string }
		NextCursor   *string `json:"next_cursor"`
	}
	mustAPI(t, p.url, bearer, "transaction.list", map[string]any{"limit": 2}, &list)
	if len(list.Transactions) != 2 || list.Transactions[0].ID != payout.ID || list.Transactions[1].ID != refund.ID || list.NextCursor == nil {
		t.Errorf("transaction.list first page: %+v", list)
	}
}
