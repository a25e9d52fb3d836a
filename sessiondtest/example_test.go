package sessiondtest_test

import (
	"fmt"

	"github.com/sessiond/sessiond/sessiondtest"
)

// A deposit walked to completion the way the hosted page walks it, with
// its callbacks checked: each was signed with the merchant's callback
// secret (the Receiver verifies that) and names the session and state.
func Example() {
	srv, err := sessiondtest.Start()
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	var created struct{ ID, Token string }
	srv.MustCall("session.create_deposit", map[string]any{
		"amount": "50.00", "country_id": "se", "merchant_reference": "order-1",
		"callbacks": []map[string]any{
			{"url": srv.Callbacks.URL, "session_state": 5},
			{"url": srv.Callbacks.URL, "session_state": 12},
			{"url": srv.Callbacks.URL, "transaction_state": 4},
		},
	}, &created)
	for _, state := range []int{1, 2, 3, 4, 5, 8, 9, 12} {
		if err := srv.ClientCall("client.transition", map[string]any{"token": created.Token, "state": state}, nil); err != nil {
			panic(err)
		}
	}

	sessionStates, transactionStates := map[int]bool{}, map[int]bool{}
	for _, cb := range srv.Callbacks.Wait(3) {
		switch {
		case cb.SessionState != nil && cb.SessionID == created.ID:
			sessionStates[*cb.SessionState] = true
		case cb.TransactionState != nil:
			transactionStates[*cb.TransactionState] = true
		}
	}
	var s struct {
		State     int    `json:"state"`
		StateName string `json:"state_name"`
	}
	srv.MustCall("session.state", map[string]string{"id": created.ID}, &s)
	fmt.Println(s.State, s.StateName)
	fmt.Println("session callbacks for 5 and 12:", sessionStates[5] && sessionStates[12])
	fmt.Println("transaction callback for 4:", transactionStates[4])
	// Output:
	// 12 STATE_COMPLETED
	// session callbacks for 5 and 12: true
	// transaction callback for 4: true
}
