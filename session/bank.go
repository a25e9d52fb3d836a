package session

// TestBank is one of the banks the hosted page offers, as bank.list lists
// them. sessiond talks to no real bank: every country has the same few
// test banks, each of which can be walked to any outcome.
type TestBank struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	CountryID     string `json:"country_id"`
	IntegrationID string `json:"integration_id"` // a session's bank_integration_id
	Enabled       bool   `json:"enabled"`
}

// testBanks are the names of the test banks every country has, by id. The
// first, "testbank", is the one the sandbox chooses
// when nothing is preselected.
var testBanks = []struct{ id, name string }{
	{"testbank", "Test Bank"},
	{"demobank", "Demo Bank"},
	{"sandboxsavings", "Sandbox Savings Bank"},
}

// Banks returns the test banks of a country (lowercase ISO 3166 alpha-2),
// in the order the hosted page shows them; none for an unknown country.
func Banks(countryID string) []TestBank {
	if _, ok := Countries[countryID]; !ok {
		return nil
	}
	out := make([]TestBank, len(testBanks))
	for i, b := range testBanks {
		out[i] = testBank(b.id, b.name, countryID)
	}
	return out
}

func testBank(id, name, countryID string) TestBank {
	return TestBank{ID: id, Name: name, CountryID: countryID, IntegrationID: id + "-" + countryID, Enabled: true}
}

// BankOf returns the test bank with the id in a country; false if the
// country has none with that id. It is asked on every create, so it
// builds only the bank it finds.
func BankOf(countryID, id string) (TestBank, bool) {
	if _, ok := Countries[countryID]; !ok {
		return TestBank{}, false
	}
	for _, b := range testBanks {
		if b.id == id {
			return testBank(b.id, b.name, countryID), true
		}
	}
	return TestBank{}, false
}
