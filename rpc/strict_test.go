package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/rs/zerolog"
	"github.com/sessiond/sessiond/session"
)

// TestStrictParamsEveryMethod: with --strict-params, every method served,
// over HTTP and over the socket alone, the sandbox's included, refuses a
// param it does not take before it does anything.
func TestStrictParamsEveryMethod(t *testing.T) {
	s := New(nil, Config{Sandbox: true, Controls: unreachedControls{}}, zerolog.Nop())
	tables := map[string]map[string]method{"http": s.methods, "socket": s.wsMethodTable()}
	for name, table := range tables {
		names := make([]string, 0, len(table))
		for m := range table {
			names = append(names, m)
		}
		slices.Sort(names)
		for _, m := range names {
			t.Run(name+"/"+m, func(t *testing.T) {
				err := callStrict(table[m], `{"zz_not_a_param":1}`)
				if session.ErrorName(err) != session.NameUnknownParameter || fieldOf(err) != "zz_not_a_param" {
					t.Errorf("%s with an unknown param: %v, want UnknownParameter zz_not_a_param", m, err)
				}
			})
		}
	}
}

// callStrict calls m as a merchant's strict request with params, turning a
// panic (the method reached a service it should not have) into an error.
func callStrict(m method, params string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panicked: %v", v)
		}
	}()
	r := &request{merchant: &session.Merchant{ID: "m"}, params: json.RawMessage(params), strict: true}
	_, err = m.fn(context.Background(), r)
	return err
}

// unreachedControls are sandbox controls that a refused request must not
// reach.
type unreachedControls struct{ SandboxControls }
