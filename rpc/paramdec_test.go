package rpc

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sessiond/sessiond/session"
)

type KindsBase struct {
	Base string `json:"base"`
}

type kindsHidden struct {
	Base string `json:"base"`
}

type kindsNested struct {
	A string `json:"a"`
	N *int   `json:"n"`
}

// kindsParams has a field of each kind params have, and some the direct
// decoder leaves to the slow way.
type kindsParams struct {
	KindsBase
	S      string           `json:"s"`
	Named  session.Type     `json:"named"`
	B      bool             `json:"b"`
	I      int              `json:"i"`
	I8     int8             `json:"i8"`
	U      uint16           `json:"u"`
	F      float64          `json:"f"`
	F32    float32          `json:"f32"`
	PS     *string          `json:"ps"`
	PI     *int             `json:"pi"`
	PB     *bool            `json:"pb"`
	State  *session.State   `json:"state"`
	Nest   kindsNested      `json:"nest"`
	PNest  *kindsNested     `json:"pnest"`
	List   []string         `json:"list"`
	Items  []kindsNested    `json:"items"`
	PItems []*kindsNested   `json:"pitems"`
	Raw    json.RawMessage  `json:"raw"`
	Dec    session.Decimal  `json:"dec"`
	PDec   *session.Decimal `json:"pdec"`
	Amount session.Amount   `json:"amount"`
	When   *time.Time       `json:"when"`
	Type   typeParam        `json:"type"`
	Ignore string           `json:"-"`
	hidden string           //nolint:unused // never decoded
	Tagged string           `json:",omitempty"`
}

// slowOnly has fields the direct decoder refuses to plan: every value
// goes the slow way.
type slowOnly struct {
	kindsHidden
	S   string            `json:"s"`
	Any any               `json:"any"`
	Map map[string]string `json:"map,omitempty"`
}

// textOnly has a field that encoding/json decodes through
// encoding.TextUnmarshaler: the slow way's, too.
type textOnly struct {
	IP netip.Addr `json:"ip"`
}

var directTypes = []reflect.Type{
	reflect.TypeFor[textOnly](),
	reflect.TypeFor[kindsParams](),
	reflect.TypeFor[session.Params](),
	reflect.TypeFor[moveParams](),
	reflect.TypeFor[kindsNested](),
	reflect.TypeFor[slowOnly](),
}

// checkDirect decodes raw into a fresh value of t both ways, the direct
// decoder first and the slow way, and fails unless the values and errors
// are the same.
func checkDirect(t *testing.T, typ reflect.Type, raw []byte, strict bool) {
	t.Helper()
	want := reflect.New(typ)
	wantErr := decodeParamsSlow(raw, want.Interface(), strict)
	got := reflect.New(typ)
	gotErr := decodeParamsMode(raw, got.Interface(), strict)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("%s, strict %v, %s: error %v, want %v", typ, strict, raw, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	opts := cmp.Exporter(func(reflect.Type) bool { return true })
	if diff := cmp.Diff(want.Interface(), got.Interface(), opts); diff != "" {
		t.Fatalf("%s, strict %v, %s: decoded otherwise (-slow +direct):\n%s", typ, strict, raw, diff)
	}
}

var directSeeds = []string{
	`{}`, `null`, `[]`, `"x"`, `5`,
	`{"token":"tok_abc","state":1,"bank":{"id":"testbank","name":"Test Bank"}}`,
	`{"token":"tok_abc","state":4,"version":3,"customer_id":"c1","bank_account":{"holder":"A","iban":"SE45","bban":"5000"}}`,
	`{"amount":"10.00","country_id":"se","merchant_reference":"bench"}`,
	`{"amount":10.5,"country_id":"se","callbacks":[{"url":"https://a.example/cb","transaction_states":[1,2]}],"closed_loop":{"a":1}}`,
	`{"amount":null,"customer_address":{"street":"s","zip":"1"},"metadata":{"k":[1,2,{"x":null}]},"approval_required":true}`,
	`{"s":"plain","named":"n","b":true,"i":-12,"i8":127,"u":65535,"f":1.5e3,"f32":0.25,"ps":"p","pi":7,"pb":false,"state":12}`,
	`{"s":"esc\"aped\n","named":"\u00e9t\u00e9","s":"twice"}`,
	`{"s":"caf\u00e9 ☕","list":["a","b\\c"],"raw":  {"z": [ 1 , 2 ] } }`,
	`{"i":1.0}`, `{"i":1e2}`, `{"i8":128}`, `{"u":-1}`, `{"u":65536}`, `{"f32":1e40}`, `{"i":"1"}`, `{"s":1}`, `{"b":"true"}`,
	`{"i":9223372036854775808}`, `{"i":-0}`, `{"f":-0.0}`,
	`{"nest":{"a":"x","n":1},"nest":{"n":2}}`,
	`{"pnest":{"a":"x"},"pnest":{"n":2}}`,
	`{"pnest":{"a":"x","extra":1},"unknown":true}`,
	`{"pnest":null,"ps":null,"pi":null,"list":null,"raw":null,"s":null,"i":null,"b":null,"f":null,"nest":null,"items":null}`,
	`{"items":[{"a":"1"},{"a":"2","n":3},{"zz":0}],"pitems":[null,{"a":"p"}]}`,
	`{"items":[{"a":1}]}`, `{"items":{}}`, `{"list":[1]}`, `{"list":[]}`, `{"items":[]}`,
	`{"dec":"12.50","pdec":12.5,"amount":"3.00"}`, `{"dec":{"x":1}}`, `{"dec":null,"pdec":null}`, `{"amount":"x"}`, `{"amount":null}`,
	`{"when":"2026-12-01T10:00:00Z"}`, `{"when":"yesterday"}`,
	`{"type":"deposit"}`, `{"type":{"a":1}}`, `{"type":[1]}`,
	`{"base":"b","Tagged":"t","tagged":"lower","Ignore":"no","-":"dash","hidden":"h"}`,
	`{"map":{"a":"b"}}`, `{"any":[1,"x"],"s":"y"}`,
	`{"State":3,"TOKEN":"case"}`,
	`{"ip":"192.0.2.1"}`, `{"ip":"no"}`, `{"ip":5}`,
	`{"pnest":[1]}`, `{"nest":"str"}`, `{"raw":"s"}`,
}

// TestDecodeDirectMatches holds the direct decoder to the slow way's
// values and errors on the seeds, lenient and strict, and checks that
// the params of the calls made most are decoded directly.
func TestDecodeDirectMatches(t *testing.T) {
	for _, typ := range directTypes {
		for _, raw := range directSeeds {
			for _, strict := range []bool{false, true} {
				checkDirect(t, typ, []byte(raw), strict)
			}
		}
	}
	for _, c := range []struct {
		v   any
		raw string
	}{
		{new(kindsParams), directSeeds[10]},
		{new(kindsParams), directSeeds[11]},
		{new(kindsParams), directSeeds[12]},
		{new(moveParams), directSeeds[5]},
		{new(moveParams), directSeeds[6]},
		{new(session.Params), directSeeds[7]},
		{new(session.Params), directSeeds[8]},
		{new(session.Params), directSeeds[9]},
	} {
		if !decodeDirect([]byte(c.raw), c.v, false) {
			t.Errorf("%T %s went the slow way", c.v, c.raw)
		}
	}
	if decodeDirect([]byte(`{"s":"x"}`), new(slowOnly), false) {
		t.Error("a struct with an interface field was decoded directly")
	}
	if decodeDirect([]byte(`{"ip":"192.0.2.1"}`), new(textOnly), false) {
		t.Error("a TextUnmarshaler was decoded directly")
	}
}

// FuzzDecodeDirect: for any valid JSON, the direct decoder (falling back
// to the slow way) and the slow way alone give the same value and error.
func FuzzDecodeDirect(f *testing.F) {
	for _, s := range directSeeds {
		f.Add([]byte(s), uint8(0), false)
		f.Add([]byte(s), uint8(2), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, which uint8, strict bool) {
		if !json.Valid(raw) {
			return // the transports refuse it before any params are decoded
		}
		checkDirect(t, directTypes[int(which)%len(directTypes)], raw, strict)
	})
}

// BenchmarkDecodeParams decodes a move's and a create's params, directly
// and the slow way.
func BenchmarkDecodeParams(b *testing.B) {
	for _, c := range []struct {
		name string
		raw  string
		v    func() any
	}{
		{"move", directSeeds[5], func() any { return new(moveParams) }},
		{"create", directSeeds[7], func() any { return new(session.Params) }},
	} {
		for _, way := range []struct {
			name string
			fn   func(json.RawMessage, any, bool) error
		}{{"direct", decodeParamsMode}, {"slow", decodeParamsSlow}} {
			b.Run(c.name+"/"+way.name, func(b *testing.B) {
				b.ReportAllocs()
				raw := json.RawMessage(c.raw)
				for b.Loop() {
					if err := way.fn(raw, c.v(), false); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
