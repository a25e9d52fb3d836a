package session

import "strconv"

// State is a session state with Brite's numbering. The numbers are on the
// wire and in the database; never renumber them.
type State int

// Session states. Which of them a session may move to depends on its Type
// (see Type.CanMove); any non-final state may also move to StateAborted or
// StateFailed.
const (
	// StateCreated is where every session starts. Moves to StateAuthenticationStarted.
	StateCreated State = 0
	// StateAuthenticationStarted moves to StateAuthenticationCompleted.
	StateAuthenticationStarted State = 1
	// StateAuthenticationCompleted moves to StateBankAccountSelectionStarted,
	// or to StateCompleted for authentication sessions.
	StateAuthenticationCompleted State = 2
	// StateBankAccountSelectionStarted moves to StateBankAccountSelectionCompleted.
	StateBankAccountSelectionStarted State = 3
	// StateBankAccountSelectionCompleted moves to StateDepositStarted for
	// deposits and recurring payments, to StateCompleted otherwise.
	StateBankAccountSelectionCompleted State = 4
	// StateDepositStarted moves to StateRecipientApprovalStarted or
	// StateTransactionApprovalStarted.
	StateDepositStarted State = 5
	// StateRecipientApprovalStarted moves to StateRecipientApprovalCompleted.
	StateRecipientApprovalStarted State = 6
	// StateRecipientApprovalCompleted moves to StateTransactionApprovalStarted.
	StateRecipientApprovalCompleted State = 7
	// StateTransactionApprovalStarted moves to StateTransactionApprovalCompleted.
	StateTransactionApprovalStarted State = 8
	// StateTransactionApprovalCompleted moves to StateCompleted.
	StateTransactionApprovalCompleted State = 9
	// StateAborted is final; the session carries an error code.
	StateAborted State = 10
	// StateFailed is final.
	StateFailed State = 11
	// StateCompleted is final.
	StateCompleted State = 12
)

var stateNames = [...]string{
	"STATE_CREATED",
	"STATE_AUTHENTICATION_STARTED",
	"STATE_AUTHENTICATION_COMPLETED",
	"STATE_BANK_ACCOUNT_SELECTION_STARTED",
	"STATE_BANK_ACCOUNT_SELECTION_COMPLETED",
	"STATE_DEPOSIT_STARTED",
	"STATE_RECIPIENT_APPROVAL_STARTED",
	"STATE_RECIPIENT_APPROVAL_COMPLETED",
	"STATE_TRANSACTION_APPROVAL_STARTED",
	"STATE_TRANSACTION_APPROVAL_COMPLETED",
	"STATE_ABORTED",
	"STATE_FAILED",
	"STATE_COMPLETED",
}

// String returns Brite's name of the state, such as "STATE_COMPLETED".
func (s State) String() string {
	if s.Valid() {
		return stateNames[s]
	}
	return "STATE_" + strconv.Itoa(int(s))
}

// Valid reports whether s is one of the 13 session states.
func (s State) Valid() bool { return s >= StateCreated && s <= StateCompleted }

// Final reports whether no move leaves s.
func (s State) Final() bool {
	return s == StateAborted || s == StateFailed || s == StateCompleted
}

// TransactionState is a transaction state with Brite's numbering.
type TransactionState int

// Transaction states. A deposit transaction starts at TxCreated when its
// session reaches StateDepositStarted and moves with the session: to
// TxCompleted when it completes, to TxAborted when it aborts first. In the
// sandbox, completed transactions go on to TxCredit and TxSettled.
const (
	// TxCreated moves to TxPending, TxCompleted, TxAborted or TxFailed.
	TxCreated TransactionState = 0
	// TxPending moves to TxCompleted, TxAborted or TxFailed.
	TxPending TransactionState = 1
	// TxAborted is final.
	TxAborted TransactionState = 2
	// TxFailed is final.
	TxFailed TransactionState = 3
	// TxCompleted moves to TxCredit (sandbox), TxAborted or TxFailed.
	TxCompleted TransactionState = 4
	// TxCredit moves to TxSettled.
	TxCredit TransactionState = 5
	// TxSettled moves to TxDebit.
	TxSettled TransactionState = 6
	// TxDebit is final.
	TxDebit TransactionState = 7
)

var txStateNames = [...]string{
	"STATE_CREATED", "STATE_PENDING", "STATE_ABORTED", "STATE_FAILED",
	"STATE_COMPLETED", "STATE_CREDIT", "STATE_SETTLED", "STATE_DEBIT",
}

// String returns Brite's name of the transaction state.
func (s TransactionState) String() string {
	if s.Valid() {
		return txStateNames[s]
	}
	return "STATE_" + strconv.Itoa(int(s))
}

// Valid reports whether s is one of the 8 transaction states.
func (s TransactionState) Valid() bool { return s >= TxCreated && s <= TxDebit }
