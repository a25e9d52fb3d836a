package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"regexp"
	"testing"
)

var banksBlock = regexp.MustCompile(`(?s)<script type="application/json" id="banks">(.*?)</script>`)

type pageBank struct{ ID, Name string }

// pageBanks returns the banks block of a session's hosted page.
func pageBanks(t *testing.T, url string) (banks []pageBank, bank *pageBank) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	m := banksBlock.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no banks block in the page: %.400s", b)
	}
	var d struct {
		Banks []pageBank
		Bank  *pageBank
	}
	if err := json.Unmarshal(m[1], &d); err != nil {
		t.Fatalf("banks block: %v: %s", err, m[1])
	}
	return d.Banks, d.Bank
}

// The hosted page offers exactly the banks bank.list gives for the
// session's country, and names a preselected bank.
func TestPageBanks(t *testing.T) {
	p := startServer(t, "--db", filepath.Join(t.TempDir(), "sessiond.db"), "--merchant", "pk_page:sk_page:"+e2eWhsec)
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	mustAPI(t, p.url, "", "merchant.authorize", map[string]string{"public_key": "pk_page", "secret": "sk_page"}, &tokens)
	for _, country := range []string{"se", "de"} {
		var list struct{ Banks []pageBank }
		mustAPI(t, p.url, tokens.AccessToken, "bank.list", map[string]string{"country_id": country}, &list)
		if len(list.Banks) < 3 {
			t.Fatalf("%s: bank.list gives %d banks", country, len(list.Banks))
		}
		var plain, pre struct{ URL string }
		mustAPI(t, p.url, tokens.AccessToken, "session.create_deposit", map[string]any{
			"amount": "10.00", "country_id": country, "brand_name": "Shop"}, &plain)
		banks, bank := pageBanks(t, plain.URL)
		if !reflect.DeepEqual(banks, list.Banks) || bank != nil {
			t.Errorf("%s: page offers %v (preselected %v), bank.list %v", country, banks, bank, list.Banks)
		}
		mustAPI(t, p.url, tokens.AccessToken, "session.create_deposit", map[string]any{
			"amount": "10.00", "country_id": country, "brand_name": "Shop", "bank_id": list.Banks[2].ID}, &pre)
		banks, bank = pageBanks(t, pre.URL)
		if !reflect.DeepEqual(banks, list.Banks) || bank == nil || *bank != list.Banks[2] {
			t.Errorf("%s: page offers %v preselected %v, want %v", country, banks, bank, list.Banks[2])
		}
	}
}
