package session

// Type is the kind of a session; it decides the create params it takes and
// the moves it allows.
type Type string

// Session types.
const (
	TypeDeposit              Type = "deposit"
	TypeRecurringPayment     Type = "recurring_payment"
	TypeWithdrawal           Type = "withdrawal"
	TypeBankAccountSelection Type = "bank_account_selection"
	TypeAuthentication       Type = "authentication"
)

// Types lists every session type in the order of the API's table.
var Types = []Type{TypeDeposit, TypeRecurringPayment, TypeWithdrawal, TypeBankAccountSelection, TypeAuthentication}

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
func (t Type) isPayment() bool { return t == TypeDeposit || t == TypeRecurringPayment }
