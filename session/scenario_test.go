package session_test

import (
	"context"
	"testing"

	"github.com/sessiond/sessiond/session"
)

// TestScenarios drives the magic references beyond the first three, one
// SandboxAdvance per step, on a sandbox Service.
func TestScenarios(t *testing.T) {
	tests := []struct {
		typ   session.Type
		ref   string
		want  []session.State
		error string
	}{
		{session.TypeDeposit, "aborted:psu_no_funds", []session.State{1, 10}, "psu_no_funds"},
		{session.TypeDeposit, "aborted:merchant_rejected", []session.State{1, 10}, "merchant_rejected"},
		{session.TypeDeposit, "aborted:not_a_code", nil, ""},
		{session.TypeDeposit, "approval", []session.State{1, 2, 3, 4}, ""}, // then waits
		{session.TypeWithdrawal, "approval", []session.State{1, 2, 3, 4}, ""},
		{session.TypeDeposit, "expire", nil, "expired_session"}, // expired at create
	}
	for _, tt := range tests {
		t.Run(string(tt.typ)+"/"+tt.ref, func(t *testing.T) {
			f := mustService(t)
			f.svc.Sandbox = true
			ctx := context.Background()
			created, _ := f.create(t, tt.typ, session.Params{Amount: amount("5"), CountryID: "se", MerchantReference: tt.ref})
			s, err := f.svc.Get(ctx, f.m, created.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got []session.State
			for range 20 {
				next, err := f.svc.SandboxAdvance(ctx, s.ID)
				if err != nil {
					t.Fatal(err)
				}
				if next.Version == s.Version {
					break
				}
				got, s = append(got, next.State), next
			}
			if !equalStates(got, tt.want) {
				t.Fatalf("states %v, want %v", got, tt.want)
			}
			if s.ErrorCode != tt.error {
				t.Errorf("error code %q, want %q", s.ErrorCode, tt.error)
			}
			if tt.ref != "approval" {
				return
			}
			if s.Approval != session.ApprovalPending || !s.Params.ApprovalRequired {
				t.Fatalf("approval %q (required %v), want pending", s.Approval, s.Params.ApprovalRequired)
			}
			if _, err := f.svc.Approve(ctx, f.m, s.ID); err != nil {
				t.Fatal(err)
			}
			for range 20 {
				if s, err = f.svc.SandboxAdvance(ctx, s.ID); err != nil {
					t.Fatal(err)
				}
			}
			if s.State != session.StateCompleted {
				t.Errorf("after approval: %v, want completed", s.State)
			}
		})
	}
}

func equalStates(a, b []session.State) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
