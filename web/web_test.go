package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sessiond/sessiond/web"
)

// A token of the real shape: 43 base64url characters.
const (
	knownToken   = "AZqF1x2Yd3eK9mNpQrStUvWxYz0123456789abcdefg"
	unknownToken = "AZqF1x2Yd3eK9mNpQrStUvWxYz0123456789abcdefX"
	failToken    = "AZqF1x2Yd3eK9mNpQrStUvWxYz0123456789abcdefF"
)

// fixture is a hosted page server over a fake Lookup that knows one token.
type fixture struct {
	srv      *httptest.Server
	redirect string
	lookups  atomic.Int64
}

func mustServer(t *testing.T, redirect string) *fixture {
	t.Helper()
	return mustServerWith(t, web.Page{RedirectURI: redirect, Payee: "Nordic Shoes AB"}, web.Options{})
}

// mustServerWith serves p for knownToken, with options o.
func mustServerWith(t *testing.T, p web.Page, o web.Options) *fixture {
	t.Helper()
	f := &fixture{redirect: p.RedirectURI}
	f.srv = httptest.NewServer(web.Handler(func(ctx context.Context, token string) (web.Page, bool, error) {
		f.lookups.Add(1)
		switch token {
		case knownToken:
			return p, true, nil
		case failToken:
			return web.Page{}, false, errors.New("store: disk on fire at /var/secret/path")
		}
		return web.Page{}, false, nil
	}, o))
	t.Cleanup(f.srv.Close)
	return f
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) do(t *testing.T, method, path string, header map[string]string) answer {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (f *fixture) get(t *testing.T, path string) answer {
	t.Helper()
	return f.do(t, http.MethodGet, path, nil)
}

// checkDocument checks the headers every HTML answer must carry.
func checkDocument(t *testing.T, a answer, wantStatus int) {
	t.Helper()
	if a.status != wantStatus {
		t.Errorf("status %d, want %d", a.status, wantStatus)
	}
	want := map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
		"Referrer-Policy":         "no-referrer",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
	}
	for k, v := range want {
		if got := a.header.Get(k); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
	if !strings.HasPrefix(a.body, "<!doctype html>") {
		t.Errorf("body does not start with <!doctype html>: %.60q", a.body)
	}
	checkNoInline(t, a.body)
}

var (
	scriptTag = regexp.MustCompile(`(?i)<script\b[^>]*>`)
	inlineCSS = regexp.MustCompile(`(?i)<style\b|\sstyle=|\son[a-z]+=`)
)

// checkNoInline checks that a document needs nothing the CSP forbids:
// every script has a src, and there are no style elements, style
// attributes or event handler attributes.
func checkNoInline(t *testing.T, body string) {
	t.Helper()
	for _, tag := range scriptTag.FindAllString(body, -1) {
		if !strings.Contains(tag, ` src="/client/assets/`) && tag != `<script type="application/json" id="messages">` && tag != `<script type="application/json" id="banks">` {
			t.Errorf("script without a same-origin src: %s", tag)
		}
	}
	if m := inlineCSS.FindString(body); m != "" {
		t.Errorf("inline style or handler %q in the document", m)
	}
}

func TestNotFound(t *testing.T) {
	f := mustServer(t, "")
	for _, path := range []string{
		"/client/" + unknownToken,
		"/client/short",
		"/client/" + strings.Repeat("a", 300),
		"/client/not%20a%20token%20at%20all%21",
		"/client/",
		"/client/" + knownToken + "/extra",
		"/client/assets/",
		"/client/assets/nope.js",
	} {
		t.Run(path, func(t *testing.T) {
			a := f.get(t, path)
			checkDocument(t, a, http.StatusNotFound)
			if !strings.Contains(a.body, "This payment link isn’t valid") {
				t.Errorf("not the 404 page: %.200s", a.body)
			}
			if !strings.Contains(a.body, `rel="stylesheet" href="/client/assets/app.css?v=`) {
				t.Error("the 404 page is not styled")
			}
		})
	}
}

func TestMalformedTokenSkipsLookup(t *testing.T) {
	f := mustServer(t, "")
	f.get(t, "/client/short")
	f.get(t, "/client/"+strings.Repeat("x", 257))
	f.get(t, "/client/has.dots.in.it.and.long.enough")
	if n := f.lookups.Load(); n != 0 {
		t.Errorf("%d lookups for malformed tokens, want 0", n)
	}
	f.get(t, "/client/"+unknownToken)
	if n := f.lookups.Load(); n != 1 {
		t.Errorf("%d lookups for one well-formed token, want 1", n)
	}
}

func TestLookupFailure(t *testing.T) {
	f := mustServer(t, "")
	a := f.get(t, "/client/"+failToken)
	checkDocument(t, a, http.StatusInternalServerError)
	if strings.Contains(a.body, "disk on fire") || strings.Contains(a.body, "/var/secret") {
		t.Errorf("the error's text reached the client: %s", a.body)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	f := mustServer(t, "")
	a := f.do(t, http.MethodPost, "/client/"+knownToken, nil)
	if a.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d, want 405", a.status)
	}
	if got := a.header.Get("Allow"); !strings.Contains(got, "GET") {
		t.Errorf("Allow %q, want GET in it", got)
	}
}

var redirectAttr = regexp.MustCompile(`<body[^>]*\sdata-redirect-uri="([^"]*)"`)

func TestPage(t *testing.T) {
	const redirect = "https://shop.example/return?order=42&lang=sv"
	f := mustServer(t, redirect)
	a := f.get(t, "/client/"+knownToken)
	checkDocument(t, a, http.StatusOK)
	if strings.Contains(a.body, knownToken) {
		t.Error("the token is in the page; the script reads it from the URL")
	}
	m := redirectAttr.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no data-redirect-uri on <body>: %.400s", a.body)
	}
	if got := html.UnescapeString(m[1]); got != redirect {
		t.Errorf("data-redirect-uri %q, want %q", got, redirect)
	}
	for _, want := range []string{
		`<script src="/client/assets/app.js?v=`,
		`<link rel="stylesheet" href="/client/assets/app.css?v=`,
		`<meta name="referrer" content="no-referrer">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`role="status"`,
		`role="alert"`,
		`<progress`,
		`<noscript>`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("page lacks %s", want)
		}
	}

	head := f.do(t, http.MethodHead, "/client/"+knownToken, nil)
	if head.status != http.StatusOK || head.body != "" || head.header.Get("Content-Security-Policy") == "" {
		t.Errorf("HEAD: status %d, body %d bytes, CSP %q", head.status, len(head.body), head.header.Get("Content-Security-Policy"))
	}
}

func TestPageWithoutRedirect(t *testing.T) {
	f := mustServer(t, "")
	a := f.get(t, "/client/"+knownToken)
	checkDocument(t, a, http.StatusOK)
	m := redirectAttr.FindStringSubmatch(a.body)
	if m == nil || m[1] != "" {
		t.Errorf("data-redirect-uri: got %q, want it present and empty", m)
	}
}

// The redirect URI is the merchant's text: it must come out as one inert
// attribute value, whatever it holds.
func TestRedirectEscaped(t *testing.T) {
	const evil = `"><script>alert(1)</script><x a='`
	f := mustServer(t, "https://shop.example/done?next="+evil)
	a := f.get(t, "/client/"+knownToken)
	checkDocument(t, a, http.StatusOK)
	if strings.Contains(a.body, `"><script>`) || strings.Contains(a.body, "alert(1)</script>") {
		t.Fatalf("the redirect URI broke out of its attribute:\n%s", a.body)
	}
	m := redirectAttr.FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no data-redirect-uri on <body>: %.400s", a.body)
	}
	u, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatalf("data-redirect-uri %q: %v", m[1], err)
	}
	if got := u.Query().Get("next"); got != evil {
		t.Errorf("the redirect URI's query came back as %q, want %q", got, evil)
	}
	if u.Scheme != "https" || u.Host != "shop.example" || u.Path != "/done" {
		t.Errorf("redirect URI %s, want https://shop.example/done", u)
	}
}

// A script URL never reaches the page, even if the server's validation of
// redirect_uri let one through.
func TestRedirectScriptURLNeutralized(t *testing.T) {
	f := mustServer(t, "javascript:alert(document.domain)")
	a := f.get(t, "/client/"+knownToken)
	if strings.Contains(a.body, "javascript:") {
		t.Fatalf("javascript: URL rendered into the page")
	}
}

var assetURL = regexp.MustCompile(`(?:src|href)="(/client/assets/[^"?]+)\?v=([0-9a-f]+)"`)

func TestAssets(t *testing.T) {
	f := mustServer(t, "")
	page := f.get(t, "/client/"+knownToken)
	links := assetURL.FindAllStringSubmatch(page.body, -1)
	want := map[string]string{
		"/client/assets/app.js":   "text/javascript; charset=utf-8",
		"/client/assets/app.css":  "text/css; charset=utf-8",
		"/client/assets/icon.svg": "image/svg+xml",
	}
	seen := map[string]bool{}
	for _, l := range links {
		path, version := l[1], l[2]
		seen[path] = true
		ct, ok := want[path]
		if !ok {
			t.Errorf("page links unexpected asset %s", path)
			continue
		}
		t.Run(path, func(t *testing.T) {
			a := f.get(t, path+"?v="+version)
			if a.status != http.StatusOK {
				t.Fatalf("status %d, want 200", a.status)
			}
			if got := a.header.Get("Content-Type"); got != ct {
				t.Errorf("Content-Type %q, want %q", got, ct)
			}
			if got := a.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
			if got := a.header.Get("Cache-Control"); got != "public, max-age=31536000, immutable" {
				t.Errorf("versioned: Cache-Control %q, want a year, immutable", got)
			}
			if len(a.body) == 0 {
				t.Error("empty asset")
			}
			etag := a.header.Get("ETag")
			if etag != `"`+version+`"` {
				t.Errorf("ETag %q, want %q", etag, `"`+version+`"`)
			}

			// Unversioned (or an old version): cacheable, but revalidated.
			old := f.get(t, path+"?v=0000")
			if got := old.header.Get("Cache-Control"); got != "public, no-cache" {
				t.Errorf("old version: Cache-Control %q, want public, no-cache", got)
			}
			if old.body != a.body {
				t.Error("an old version gets other content")
			}
			nm := f.do(t, http.MethodGet, path, map[string]string{"If-None-Match": etag})
			if nm.status != http.StatusNotModified {
				t.Errorf("If-None-Match: status %d, want 304", nm.status)
			}
		})
	}
	for path := range want {
		if !seen[path] {
			t.Errorf("the page does not link %s", path)
		}
	}
}

// The script must not need what the CSP forbids: no eval, no inline
// handlers, no innerHTML with data, no third-party origins.
func TestScriptIsCSPClean(t *testing.T) {
	f := mustServer(t, "")
	// The SVG namespace is a name, not a place the script goes to.
	js := strings.ReplaceAll(f.get(t, "/client/assets/app.js").body, "'http://www.w3.org/2000/svg'", "")
	for _, bad := range []string{"eval(", "new Function", "innerHTML", "outerHTML", "document.write", "setAttribute('style'", "http://", "https://"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %q", bad)
		}
	}
	for _, want := range []string{"'/rpc'", "/rpc/ws", "client.subscribe", "client.transition", "client.get", "location.pathname"} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %q", want)
		}
	}
	css := f.get(t, "/client/assets/app.css").body
	if strings.Contains(css, "@import") || strings.Contains(css, "url(http") {
		t.Error("app.css loads from elsewhere")
	}
}

var messagesBlock = regexp.MustCompile(`(?s)<script type="application/json" id="messages">(.*?)</script>`)

// The page speaks the session's language: the lang attribute, the text
// rendered on the server and the messages handed to the script.
func TestPageLanguage(t *testing.T) {
	for _, c := range []struct{ locale, country, lang, loading string }{
		{"sv-SE", "se", "sv", "Betalningen laddas…"},
		{"", "de", "de", "Ihre Zahlung wird geladen…"},
		{"fr-FR", "fr", "en", "Loading your payment…"},
	} {
		f := mustServerWith(t, web.Page{Payee: `Nordic "Shoes" <AB>`, Locale: c.locale, CountryID: c.country}, web.Options{})
		a := f.get(t, "/client/"+knownToken)
		checkDocument(t, a, http.StatusOK)
		if !strings.Contains(a.body, `<html lang="`+c.lang+`">`) {
			t.Errorf("%s/%s: no <html lang=%q>", c.locale, c.country, c.lang)
		}
		if !strings.Contains(a.body, c.loading) {
			t.Errorf("%s/%s: the page lacks %q", c.locale, c.country, c.loading)
		}
		if !strings.Contains(a.body, `<title>Nordic &#34;Shoes&#34; &lt;AB&gt;</title>`) {
			t.Errorf("%s/%s: the title is not the escaped payee: %.300s", c.locale, c.country, a.body)
		}
		m := messagesBlock.FindStringSubmatch(a.body)
		if m == nil {
			t.Fatalf("no messages in the page")
		}
		var msgs map[string]any
		if err := json.Unmarshal([]byte(m[1]), &msgs); err != nil {
			t.Fatalf("messages: %v\n%.200s", err, m[1])
		}
		if msgs["loading"] != c.loading {
			t.Errorf("%s/%s: messages say %q, want %q", c.locale, c.country, msgs["loading"], c.loading)
		}
	}
}

// The 404 page speaks the browser's language, as it knows no session.
func TestNotFoundLanguage(t *testing.T) {
	f := mustServer(t, "")
	a := f.do(t, http.MethodGet, "/client/"+unknownToken, map[string]string{"Accept-Language": "fr-FR,sv;q=0.8,en;q=0.5"})
	checkDocument(t, a, http.StatusNotFound)
	if !strings.Contains(a.body, `<html lang="sv">`) || !strings.Contains(a.body, "Den här betalningslänken är inte giltig") {
		t.Errorf("not Swedish: %.600s", a.body)
	}
}

// Framing: refused unless origins are allowed, by the server (every page)
// or for the session's merchant (its pages only); X-Frame-Options only
// when no origin may frame the page, since it cannot name several.
func TestFrameAncestors(t *testing.T) {
	const base = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
	for _, c := range []struct {
		name           string
		server, ownPg  []string
		page, notFound string
	}{
		{"default", nil, nil, "'none'", "'none'"},
		{"server", []string{"https://shop.example", "http://127.0.0.1:8081"}, nil, "https://shop.example http://127.0.0.1:8081", "https://shop.example http://127.0.0.1:8081"},
		{"merchant", nil, []string{"https://*.nordic.example"}, "https://*.nordic.example", "'none'"},
		{"both", []string{"https://shop.example"}, []string{"https://nordic.example"}, "https://shop.example https://nordic.example", "https://shop.example"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := mustServerWith(t, web.Page{Payee: "Nordic Shoes AB", FrameAncestors: c.ownPg}, web.Options{FrameAncestors: c.server})
			for _, p := range []struct{ path, want string }{{"/client/" + knownToken, c.page}, {"/client/" + unknownToken, c.notFound}} {
				a := f.get(t, p.path)
				if got, want := a.header.Get("Content-Security-Policy"), base+"frame-ancestors "+p.want; got != want {
					t.Errorf("%s: CSP\n%q, want\n%q", p.path, got, want)
				}
				xfo := a.header.Get("X-Frame-Options")
				if p.want == "'none'" && xfo != "DENY" || p.want != "'none'" && xfo != "" {
					t.Errorf("%s: X-Frame-Options %q with frame-ancestors %s", p.path, xfo, p.want)
				}
			}
		})
	}
}
