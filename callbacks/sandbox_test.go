package callbacks

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/session"
)

// TestFaults: a fault fails only its merchant's deliveries to matching
// URLs, count times, first armed first; Forget disarms a merchant's.
func TestFaults(t *testing.T) {
	var fs Faults
	fs.Add("m1", session.CallbackFault{URLPrefix: "http://a.example/", Kind: session.FaultStatus, Status: 503, Count: 2})
	fs.Add("m1", session.CallbackFault{URLPrefix: "http://a.example/", Kind: session.FaultTimeout, Count: 1})
	fs.Add("m2", session.CallbackFault{URLPrefix: "http://", Kind: session.FaultReset, Count: 1})
	at := func(merchant, url string) string {
		f, ok := fs.take(&session.Delivery{MerchantID: merchant, URL: url})
		if !ok {
			return "sent"
		}
		if f.Kind == session.FaultStatus {
			return "503"
		}
		return string(f.Kind)
	}
	for i, tt := range []struct{ merchant, url, want string }{
		{"m1", "http://b.example/cb", "sent"},
		{"m1", "http://a.example/cb", "503"},
		{"m3", "http://a.example/cb", "sent"},
		{"m1", "http://a.example/x", "503"},
		{"m1", "http://a.example/x", "timeout"},
		{"m1", "http://a.example/x", "sent"},
	} {
		if got := at(tt.merchant, tt.url); got != tt.want {
			t.Errorf("%d: %s %s: %s, want %s", i, tt.merchant, tt.url, got, tt.want)
		}
	}
	fs.Forget("m2")
	if got := at("m2", "http://a.example/"); got != "sent" {
		t.Errorf("after Forget: %s, want sent", got)
	}
	var none *Faults
	if _, ok := none.take(&session.Delivery{URL: "http://a.example/"}); ok {
		t.Error("a nil Faults failed an attempt")
	}
}

// TestJournal: attempts come back per merchant, oldest first, filtered by
// time and session; Forget drops one merchant's.
func TestJournal(t *testing.T) {
	var j Journal
	t0 := time.Unix(1_800_000_000, 0)
	for i, a := range []session.Attempt{
		{MerchantID: "m1", SessionID: "s1"}, {MerchantID: "m2", SessionID: "s2"},
		{MerchantID: "m1", SessionID: "s3"}, {MerchantID: "m1", SessionID: "s1"},
	} {
		a.WebhookID, a.At = string(rune('a'+i)), t0.Add(time.Duration(i)*time.Second)
		j.record(a)
	}
	ids := func(as []session.Attempt) string {
		var s string
		for _, a := range as {
			s += a.WebhookID
		}
		return s
	}
	for _, tt := range []struct {
		since   time.Time
		session string
		want    string
	}{
		{time.Time{}, "", "acd"},
		{t0.Add(2 * time.Second), "", "cd"},
		{time.Time{}, "s1", "ad"},
	} {
		if got := ids(j.Attempts("m1", tt.since, tt.session)); got != tt.want {
			t.Errorf("since %v session %q: %s, want %s", tt.since, tt.session, got, tt.want)
		}
	}
	j.Forget("m1")
	if got := ids(j.Attempts("m1", time.Time{}, "")) + "|" + ids(j.Attempts("m2", time.Time{}, "")); got != "|b" {
		t.Errorf("after Forget: %s, want |b", got)
	}
}
