// Package web serves the end user's hosted page, /client/<token>, with its
// assets embedded in the binary.
//
// The page is one HTML document rendered with html/template; everything
// that changes as the session moves is done by assets/app.js, which reads
// the token from the page's own path and talks JSON-RPC to /rpc (and
// /rpc/ws for change notifications, falling back to polling). Nothing but
// the merchant's redirect_uri is rendered into the HTML, as an escaped
// attribute: no inline script or style, so the Content-Security-Policy can
// forbid both.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog/hlog"
)

// Page is what the hosted page needs to know of a session before its
// script runs.
type Page struct {
	// RedirectURI is where the page goes once the session is final; empty
	// for none.
	RedirectURI string
	// Payee is who the end user deals with: the session's brand name, else
	// its merchant's name.
	Payee string
	// Locale and CountryID are the session's, and choose the page's
	// language (see Language).
	Locale, CountryID string
	// FrameAncestors are origins, beyond the server's, that may embed this
	// session's page (the merchant's own).
	FrameAncestors []string
	// Banks are the banks the page offers, those of the session's country,
	// in order.
	Banks []Bank
	// Bank is the session's bank, preselected at create or chosen since;
	// nil for none. A page that opens on a session with a preselected bank
	// goes straight to that bank.
	Bank *Bank
}

// Bank is a bank the page offers, as client.transition names it.
type Bank struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Lookup returns the page of the session with the end-user token, and
// found=false for an unknown or malformed token.
type Lookup func(ctx context.Context, token string) (p Page, found bool, err error)

// ContentSecurityPolicy is the policy of every HTML answer that no origin
// may embed: scripts, styles and connections (WebSocket included) from the
// page's own origin only, nothing inline, no framing, no forms, no <base>.
const ContentSecurityPolicy = basePolicy + "frame-ancestors 'none'"

const basePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "

// Options configure the hosted page.
type Options struct {
	// FrameAncestors are the origins (scheme://host[:port], the host may
	// start with "*.") that may embed every page in a frame; none by
	// default. Check them with CheckOrigin.
	FrameAncestors []string
}

// AssetPrefix is the path under which the page's assets are served.
const AssetPrefix = "/client/assets/"

//go:embed assets templates
var files embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	name, contentType string
	body              []byte
	version           string // a prefix of the SHA-256 of body
}

// contentTypes are the types of the asset extensions; an asset of any
// other extension is refused at start.
var contentTypes = map[string]string{
	".js":  "text/javascript; charset=utf-8",
	".css": "text/css; charset=utf-8",
	".svg": "image/svg+xml",
}

// site is the parsed templates and the assets.
type site struct {
	assets   map[string]*asset
	page     *template.Template
	notFound *template.Template
	failure  *template.Template
	messages map[string]messages // by language
}

func loadSite() (*site, error) {
	s := &site{assets: map[string]*asset{}}
	entries, err := fs.ReadDir(files, "assets")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if e.IsDir() {
			continue // the message files, which the pages carry
		}
		ct, ok := contentTypes[path.Ext(e.Name())]
		if !ok {
			return nil, fmt.Errorf("web: asset %s: unknown content type", e.Name())
		}
		b, err := files.ReadFile("assets/" + e.Name())
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		s.assets[e.Name()] = &asset{name: e.Name(), contentType: ct, body: b, version: hex.EncodeToString(sum[:6])}
	}
	funcs := template.FuncMap{
		// asset gives the versioned URL of an asset, so that it can be
		// cached for good and still change with the binary.
		"asset": func(name string) (string, error) {
			a, ok := s.assets[name]
			if !ok {
				return "", fmt.Errorf("web: no asset %q", name)
			}
			return AssetPrefix + a.name + "?v=" + a.version, nil
		},
	}
	parse := func(name string) (*template.Template, error) {
		return template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name)
	}
	if s.page, err = parse("page.html"); err != nil {
		return nil, err
	}
	if s.notFound, err = parse("notfound.html"); err != nil {
		return nil, err
	}
	if s.failure, err = parse("failure.html"); err != nil {
		return nil, err
	}
	if s.messages, err = loadMessages(files); err != nil {
		return nil, err
	}
	return s, nil
}

// theSite is parsed once; the embedded files are part of the binary, so a
// failure here is a build defect and panics at start.
var theSite = func() *site {
	s, err := loadSite()
	if err != nil {
		panic(err)
	}
	return s
}()

// Handler serves GET /client/{token} and the page's assets under
// /client/assets/. Any other path under /client/ gets the 404 page.
func Handler(lookup Lookup, o Options) http.Handler {
	s := theSite
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+AssetPrefix+"{name}", s.serveAsset)
	notice := func(w http.ResponseWriter, r *http.Request, t *template.Template, status int) {
		lang := acceptLanguage(r.Header.Get("Accept-Language"))
		s.render(w, r, t, status, s.data(lang), o.FrameAncestors)
	}
	mux.HandleFunc("GET /client/{token}", func(w http.ResponseWriter, r *http.Request) {
		token := r.PathValue("token")
		if !plausibleToken(token) {
			notice(w, r, s.notFound, http.StatusNotFound)
			return
		}
		p, found, err := lookup(r.Context(), token)
		if err != nil {
			hlog.FromRequest(r).Error().Err(err).Msg("hosted page: look up the session")
			notice(w, r, s.failure, http.StatusInternalServerError)
			return
		}
		if !found {
			notice(w, r, s.notFound, http.StatusNotFound)
			return
		}
		d := s.data(Language(p.Locale, p.CountryID))
		d.RedirectURI, d.Payee = p.RedirectURI, p.Payee
		d.Banks = BanksData{Banks: p.Banks, Bank: p.Bank}
		if d.Banks.Banks == nil {
			d.Banks.Banks = []Bank{}
		}
		s.render(w, r, s.page, http.StatusOK, d, append(o.FrameAncestors[:len(o.FrameAncestors):len(o.FrameAncestors)], p.FrameAncestors...))
	})
	mux.HandleFunc("/client/", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			securityHeaders(w.Header())
			http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
			return
		}
		notice(w, r, s.notFound, http.StatusNotFound)
	})
	return mux
}

// pageData is what the templates are rendered with.
type pageData struct {
	Lang        string
	RedirectURI string
	Payee       string
	Banks       BanksData
	msgs        messages
}

// BanksData is the page's banks as its script reads them.
type BanksData struct {
	Banks []Bank `json:"banks"`
	Bank  *Bank  `json:"bank"`
}

func (s *site) data(lang string) pageData {
	return pageData{Lang: lang, msgs: s.messages[lang]}
}

// T returns the message key in the page's language, with the {name}
// placeholders of the args pairs filled in.
func (d pageData) T(key string, args ...string) string { return d.msgs.text(key, args...) }

// Messages are all the messages of the page's language, for the script.
func (d pageData) Messages() map[string]any { return d.msgs }

// plausibleToken reports whether token could be an end-user token
// (base64url, of a sane length), to spare the store lookups of garbage.
func plausibleToken(token string) bool {
	if len(token) < 16 || len(token) > 256 {
		return false
	}
	for _, c := range []byte(token) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// securityHeaders sets the headers every answer under /client/ carries.
// The token is in the page's URL, so no referrer leaves it.
func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// render writes an HTML page with the document security headers. Pages
// are never cached: the page's URL holds a credential.
// The page may be framed by the origins of ancestors, and by none if it is
// empty.
func (s *site) render(w http.ResponseWriter, r *http.Request, t *template.Template, status int, data any, ancestors []string) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		hlog.FromRequest(r).Error().Err(err).Msg("hosted page: render")
		securityHeaders(w.Header())
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	if len(ancestors) == 0 {
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		// For browsers that predate frame-ancestors; it has no way to
		// name several origins, so it is only sent when none may frame.
		h.Set("X-Frame-Options", "DENY")
	} else {
		h.Set("Content-Security-Policy", basePolicy+"frame-ancestors "+strings.Join(ancestors, " "))
	}
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// serveAsset serves an embedded asset. Asked for by its current version
// (?v=…, as the page links it) it may be cached for a year; otherwise it
// must be revalidated, which its ETag makes cheap.
func (s *site) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := s.assets[r.PathValue("name")]
	if !ok {
		s.render(w, r, s.notFound, http.StatusNotFound, s.data(acceptLanguage(r.Header.Get("Accept-Language"))), nil)
		return
	}
	h := w.Header()
	securityHeaders(h)
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", `"`+a.version+`"`)
	if v := r.URL.Query().Get("v"); v == a.version {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "public, no-cache")
	}
	if strings.HasSuffix(a.name, ".svg") {
		// An SVG opened on its own is a document: keep it inert.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; sandbox")
	}
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

// ParseOrigins parses a comma-separated list of origins that may frame the
// page (scheme://host[:port], http or https; the host may start with "*."
// for any subdomain) and returns them lower-cased, without a trailing
// slash. Anything else, such as a path, a quote or 'none', is an error, so
// that nothing but origins can reach the policy.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(list, ",") {
		o := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(raw), "/"))
		if o == "" {
			continue
		}
		if err := checkOrigin(o); err != nil {
			return nil, fmt.Errorf("web: frame ancestor %q: %w", strings.TrimSpace(raw), err)
		}
		out = append(out, o)
	}
	return out, nil
}

func checkOrigin(o string) error {
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return errors.New("want http:// or https:// and a host")
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") { // an IPv6 literal
		end := strings.Index(rest, "]")
		if end < 0 {
			return errors.New("unclosed [ in the host")
		}
		host, port = rest[:end+1], strings.TrimPrefix(rest[end+1:], ":")
		if rest[end+1:] != "" && !strings.HasPrefix(rest[end+1:], ":") {
			return errors.New("want only scheme://host[:port]")
		}
		if net.ParseIP(host[1:end]) == nil {
			return errors.New("not an IPv6 address in [ ]")
		}
	} else {
		if h, p, ok := strings.Cut(rest, ":"); ok {
			host, port = h, p
		}
		name := strings.TrimPrefix(host, "*.")
		if name == "" || len(name) > 253 {
			return errors.New("no host")
		}
		for _, label := range strings.Split(name, ".") {
			if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
				return errors.New("want only scheme://host[:port]")
			}
			for _, c := range []byte(label) {
				if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
					return errors.New("want only scheme://host[:port]")
				}
			}
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return errors.New("bad port")
		}
	}
	return nil
}
