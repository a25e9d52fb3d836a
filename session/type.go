package session

import "strconv"

// Type is the kind of a session; it decides the create params it takes and
// the moves it allows. It is stored by name; on the wire it is a number
// (Number) with the name beside it.
type Type string

// Session types.
const (
	TypeDeposit              Type = "deposit"
	TypeRecurringPayment     Type = "recurring_payment"
	TypeWithdrawal           Type = "withdrawal"
	TypeBankAccountSelection Type = "bank_account_selection"
	TypeAuthentication       Type = "authentication"
	TypeSwishPayment         Type = "swish_payment"
	TypeIdealPayment         Type = "ideal_payment"
)

// Types lists every session type in the order of the API's table: a
// type's index is its number on the wire. Brite does not publish its
// numbering; this one is sessiond's. Never renumber: append.
var Types = []Type{TypeDeposit, TypeRecurringPayment, TypeWithdrawal, TypeBankAccountSelection, TypeAuthentication,
	TypeSwishPayment, TypeIdealPayment}

// Number returns the type's number on the wire, or -1 for an unknown type.
func (t Type) Number() int {
	for i, u := range Types {
		if u == t {
			return i
		}
	}
	return -1
}

// TypeOf returns the type with the wire number or name s ("0" or
// "deposit"); false if there is none.
func TypeOf(s string) (Type, bool) {
	for i, u := range Types {
		if s == string(u) || s == strconv.Itoa(i) {
			return u, true
		}
	}
	return "", false
}

// flow is one session type's move table: the single source of truth for
// which moves are allowed, and the happy path that progress is measured on.
type flow struct {
	moves map[State][]State // besides the moves to StateAborted and StateFailed
	path  []State
}

var (
	paymentFlow = flow{
		moves: map[State][]State{
			StateCreated:                       {StateAuthenticationStarted},
			StateAuthenticationStarted:         {StateAuthenticationCompleted},
			StateAuthenticationCompleted:       {StateBankAccountSelectionStarted},
			StateBankAccountSelectionStarted:   {StateBankAccountSelectionCompleted},
			StateBankAccountSelectionCompleted: {StateDepositStarted},
			StateDepositStarted:                {StateRecipientApprovalStarted, StateTransactionApprovalStarted},
			StateRecipientApprovalStarted:      {StateRecipientApprovalCompleted},
			StateRecipientApprovalCompleted:    {StateTransactionApprovalStarted},
			StateTransactionApprovalStarted:    {StateTransactionApprovalCompleted},
			StateTransactionApprovalCompleted:  {StateCompleted},
		},
		path: []State{0, 1, 2, 3, 4, 5, 8, 9, 12},
	}
	accountFlow = flow{
		moves: map[State][]State{
			StateCreated:                       {StateAuthenticationStarted},
			StateAuthenticationStarted:         {StateAuthenticationCompleted},
			StateAuthenticationCompleted:       {StateBankAccountSelectionStarted},
			StateBankAccountSelectionStarted:   {StateBankAccountSelectionCompleted},
			StateBankAccountSelectionCompleted: {StateCompleted},
		},
		path: []State{0, 1, 2, 3, 4, 12},
	}
	authenticationFlow = flow{
		moves: map[State][]State{
			StateCreated:                 {StateAuthenticationStarted},
			StateAuthenticationStarted:   {StateAuthenticationCompleted},
			StateAuthenticationCompleted: {StateCompleted},
		},
		path: []State{0, 1, 2, 12},
	}
	flows = map[Type]*flow{
		TypeDeposit:              &paymentFlow,
		TypeRecurringPayment:     &paymentFlow,
		TypeWithdrawal:           &accountFlow,
		TypeBankAccountSelection: &accountFlow,
		TypeAuthentication:       &authenticationFlow,
		TypeSwishPayment:         &paymentFlow,
		TypeIdealPayment:         &paymentFlow,
	}
)

// Valid reports whether t is a known session type.
func (t Type) Valid() bool { return flows[t] != nil }

// CanMove reports whether a session of type t may move from one state to
// another.
func (t Type) CanMove(from, to State) bool {
	f := flows[t]
	if f == nil || !from.Valid() || from.Final() {
		return false
	}
	if to == StateAborted || to == StateFailed {
		return true
	}
	for _, s := range f.moves[from] {
		if s == to {
			return true
		}
	}
	return false
}

// TotalSteps is the number of steps on the happy path of type t.
func (t Type) TotalSteps() int { return len(flows[t].path) - 1 }

// step is the position of state s on t's happy path; states off the path
// count as the step of the path state they follow (6 and 7 as 5), and ok is
// false for the states that keep the step reached before them (10, 11).
func (t Type) step(s State) (n int, ok bool) {
	if s == StateRecipientApprovalStarted || s == StateRecipientApprovalCompleted {
		s = StateDepositStarted
	}
	for i, p := range flows[t].path {
		if p == s {
			return i, true
		}
	}
	return 0, false
}

// isPayment reports whether sessions of type t carry a deposit transaction.
func (t Type) isPayment() bool { return flows[t] == &paymentFlow }

// fixedMarket is the only country and currency of a type that has one
// (Swish is Swedish, iDEAL Dutch); the country is also its default.
var fixedMarket = map[Type]struct{ country, currency string }{
	TypeSwishPayment: {"se", "sek"},
	TypeIdealPayment: {"nl", "eur"},
}
