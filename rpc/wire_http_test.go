package rpc_test

import (
	"testing"
	"time"
)

// wireSession is what the tests below read of session.get and client.get.
type wireSession struct {
	State       int      `json:"state"`
	Version     int      `json:"version"`
	Approval    *string  `json:"approval"`
	LastRequest *float64 `json:"last_request"`
	IP          *string  `json:"ip"`
	UserAgent   *string  `json:"user_agent"`
	Bank        *struct {
		ID string `json:"id"`
	} `json:"bank"`
	ViewState struct {
		Theme             string `json:"theme"`
		SessionManagement struct {
			Active  bool  `json:"active"`
			Warning int64 `json:"warning"`
			End     int64 `json:"end"`
		} `json:"session_management"`
	} `json:"view_state"`
}

// TestReadsFollowChanges: reads of a session, which may be answered from
// the bytes of an earlier read, show every change since: a touch (which
// keeps the version), a move, an approval.
func TestReadsFollowChanges(t *testing.T) {
	ts := mustServer(t, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(t, ts)
	id, token, bearer := fx["session_id"], fx["session_token"], fx["token"]
	read := func(method string) (s wireSession) {
		t.Helper()
		if method == "client.get" {
			ts.mustCall(t, "", method, map[string]string{"token": token}, &s)
		} else {
			ts.mustCall(t, bearer, method, map[string]string{"id": id}, &s)
		}
		return s
	}

	for range 2 {
		if s := read("session.get"); s.State != 0 || s.Version != 1 || s.LastRequest != nil || s.UserAgent != nil {
			t.Fatalf("new session: got state %d version %d last_request %v user_agent %v, want 0 1 null null", s.State, s.Version, s.LastRequest, s.UserAgent)
		}
	}

	ts.Clock.Advance(time.Second)
	if s := read("client.get"); s.State != 0 {
		t.Fatalf("client.get: state %d, want 0", s.State)
	}
	s := read("session.get")
	want := float64(ts.Clock.Now().UnixMicro()) / 1e6
	if s.Version != 1 || s.LastRequest == nil || *s.LastRequest != want || s.IP == nil || *s.IP != "127.0.0.1" || s.UserAgent == nil {
		t.Fatalf("after a touch: got version %d last_request %v ip %v user_agent %v, want 1, %v, 127.0.0.1 and the client's", s.Version, s.LastRequest, s.IP, s.UserAgent, want)
	}
	ts.Clock.Advance(time.Second)
	read("client.get")
	if s := read("session.get"); s.LastRequest == nil || *s.LastRequest != want+1 {
		t.Fatalf("after a second touch: last_request %v, want %v", s.LastRequest, want+1)
	}

	ts.mustCall(t, "", "client.transition", map[string]any{"token": token, "state": 1, "bank": map[string]string{"id": "testbank", "name": "Test Bank"}}, nil)
	if s := read("session.get"); s.State != 1 || s.Version != 2 || s.Bank == nil || s.Bank.ID != "testbank" {
		t.Fatalf("after a move: session.get has state %d version %d bank %+v, want 1 2 testbank", s.State, s.Version, s.Bank)
	}
	if s := read("session.state"); s.State != 1 || s.Version != 2 {
		t.Fatalf("after a move: session.state has state %d version %d, want 1 2", s.State, s.Version)
	}
	if s := read("client.get"); s.State != 1 || s.Version != 2 {
		t.Fatalf("after a move: client.get has state %d version %d, want 1 2", s.State, s.Version)
	}

	var created struct{ ID string }
	params := map[string]any{"amount": "10.00", "country_id": "se", "approval_required": true}
	ts.mustCall(t, bearer, "session.create_deposit", params, &created)
	id = created.ID
	if s := read("session.get"); s.Approval == nil || *s.Approval != "pending" {
		t.Fatalf("approval_required session: approval %v, want pending", s.Approval)
	}
	ts.mustCall(t, bearer, "session.approve", map[string]string{"id": id}, nil)
	if s := read("session.get"); s.Approval == nil || *s.Approval != "approved" {
		t.Fatalf("after session.approve: approval %v, want approved", s.Approval)
	}
}

// TestSessionManagementCountsDown: reads of a session that does not change
// show session_management for the time of each read, to its end.
func TestSessionManagementCountsDown(t *testing.T) {
	ts := mustServer(t, testConfig())
	ts.Srv.SetReady(true)
	fx := mustFixture(t, ts)
	for _, c := range []struct {
		method, bearer, key, param string
	}{
		{"session.get", fx["token"], "id", fx["session_id"]},
		{"session.get_by_token", "", "token", fx["session_token"]},
		{"client.get", "", "token", fx["session_token"]},
	} {
		var first wireSession
		ts.mustCall(t, c.bearer, c.method, map[string]string{c.key: c.param}, &first)
		left := first.ViewState.SessionManagement.End
		for _, step := range []time.Duration{0, 90 * time.Second, 1500 * time.Millisecond, 3 * time.Minute} {
			ts.Clock.Advance(step)
			left -= int64(step / time.Second)
			var s wireSession
			ts.mustCall(t, c.bearer, c.method, map[string]string{c.key: c.param}, &s)
			sm := s.ViewState.SessionManagement
			if s.ViewState.Theme != "dark" || !sm.Active || sm.End < left-1 || sm.End > left || sm.Warning != max(sm.End-120, 0) {
				t.Fatalf("%s after %v more: view_state %+v, want theme dark, active, end about %d, warning 120s before", c.method, step, s.ViewState, left)
			}
			left = sm.End
		}
	}
	ts.Clock.Advance(time.Hour)
	var s wireSession
	ts.mustCall(t, fx["token"], "session.get", map[string]string{"id": fx["session_id"]}, &s)
	if sm := s.ViewState.SessionManagement; sm.Active || sm.End != 0 || sm.Warning != 0 || s.State != 0 {
		t.Fatalf("past its end: state %d session_management %+v, want state 0 (not swept yet), inactive, 0, 0", s.State, sm)
	}
}
