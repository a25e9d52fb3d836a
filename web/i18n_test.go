package web

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// pluralForms are the Intl.PluralRules categories (CLDR) each language's
// plural messages must give, beyond "other".
var pluralForms = map[string][]string{
	"en": {"one"}, "sv": {"one"}, "fi": {"one"}, "nb": {"one"}, "da": {"one"}, "de": {"one"},
	"nl": {"one"}, "et": {"one"}, "pl": {"one", "few", "many"}, "lt": {"one", "few", "many"},
	"lv": {"zero", "one"},
}

var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// placeholders returns the sorted placeholders of every form of v.
func placeholders(v any) []string {
	var all []string
	switch v := v.(type) {
	case string:
		all = placeholder.FindAllString(v, -1)
	case map[string]any:
		for _, s := range v {
			all = append(all, placeholder.FindAllString(s.(string), -1)...)
		}
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// Every language has every message, with the same placeholders, with
// the plural forms its language needs, and is a translation: most of its
// strings differ from English.
func TestMessagesComplete(t *testing.T) {
	all, err := loadMessages(files)
	if err != nil {
		t.Fatal(err)
	}
	en := all["en"]
	if len(en) < 100 {
		t.Fatalf("en has %d messages; the page needs more", len(en))
	}
	for _, lang := range Languages {
		m := all[lang]
		t.Run(lang, func(t *testing.T) {
			for _, k := range slices.Sorted(maps.Keys(en)) {
				v, ok := m[k]
				if !ok {
					t.Errorf("%s lacks %q", lang, k)
					continue
				}
				if got, want := placeholders(v), placeholders(en[k]); !slices.Equal(got, want) {
					t.Errorf("%s %q: placeholders %v, want %v", lang, k, got, want)
				}
				if forms, ok := v.(map[string]any); ok {
					for _, f := range append([]string{"other"}, pluralForms[lang]...) {
						if _, ok := forms[f]; !ok {
							t.Errorf("%s %q: no %q form", lang, k, f)
						}
					}
				} else if _, ok := en[k].(map[string]any); ok {
					t.Errorf("%s %q: a plain string, want plural forms", lang, k)
				}
				if s, ok := v.(string); ok && strings.TrimSpace(s) == "" {
					t.Errorf("%s %q is empty", lang, k)
				}
			}
			for k := range m {
				if _, ok := en[k]; !ok {
					t.Errorf("%s has %q, which en lacks", lang, k)
				}
			}
			if lang == "en" {
				return
			}
			same := 0
			for k, v := range m {
				if s, ok := v.(string); ok && s == en[k] {
					same++
				}
			}
			if same > len(en)/5 {
				t.Errorf("%s: %d of %d messages are the English ones", lang, same, len(en))
			}
		})
	}
}

var scriptKey = regexp.MustCompile(`\bt\('([a-z_.]+)'`)

// Every message the script names literally exists.
func TestScriptMessagesExist(t *testing.T) {
	js, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	var en messages
	b, err := os.ReadFile("assets/i18n/en.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &en); err != nil {
		t.Fatal(err)
	}
	keys := scriptKey.FindAllStringSubmatch(string(js), -1)
	if len(keys) < 50 {
		t.Fatalf("found %d t('…') calls in app.js; is the pattern stale?", len(keys))
	}
	for _, k := range keys {
		if _, ok := en[k[1]]; !ok && !strings.HasSuffix(k[1], ".") {
			t.Errorf("app.js uses message %q, which en.json lacks", k[1])
		}
	}
}

func TestLanguage(t *testing.T) {
	for _, c := range []struct{ locale, country, want string }{
		{"sv-SE", "se", "sv"},
		{"sv_FI", "fi", "sv"},
		{"de", "se", "de"},
		{"DE-at", "", "de"},
		{"", "fi", "fi"},
		{"", "NO", "nb"},
		{"no-NO", "", "nb"},
		{"nn", "", "nb"},
		{"nb-NO", "se", "nb"},
		{"fr-FR", "nl", "nl"},
		{"fr-FR", "fr", "en"},
		{"en-GB", "de", "en"},
		{"", "", "en"},
		{"", "us", "en"},
		{"pl", "", "pl"}, {"et-EE", "", "et"}, {"", "lv", "lv"}, {"", "lt", "lt"}, {"da", "", "da"}, {"", "ee", "et"},
	} {
		if got := Language(c.locale, c.country); got != c.want {
			t.Errorf("Language(%q, %q) = %q, want %q", c.locale, c.country, got, c.want)
		}
	}
}

func TestAcceptLanguage(t *testing.T) {
	for _, c := range []struct{ header, want string }{
		{"", "en"},
		{"sv-SE,sv;q=0.9,en;q=0.8", "sv"},
		{"fr-FR,fr;q=0.9,de;q=0.8", "de"},
		{"en;q=0.5,fi;q=0.9", "fi"},
		{"fr,es", "en"},
		{"de;q=0,nl", "nl"},
	} {
		if got := acceptLanguage(c.header); got != c.want {
			t.Errorf("acceptLanguage(%q) = %q, want %q", c.header, got, c.want)
		}
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins(" https://Shop.example ,http://127.0.0.1:8081/, https://*.shop.example,http://[::1]:9000")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://shop.example", "http://127.0.0.1:8081", "https://*.shop.example", "http://[::1]:9000"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, err := ParseOrigins(""); err != nil || len(got) != 0 {
		t.Errorf("empty list: %q, %v", got, err)
	}
	for _, bad := range []string{
		"'none'", "*", "shop.example", "ftp://shop.example", "https://shop.example/path", "https://shop.example?q",
		"https://shop.example;script-src *", "https://shop .example", "https://user@shop.example", "https://shop.example:0",
		"https://shop.example:99999", "https://", "https://[::1", "https://[nope]", "https://-shop.example", "javascript:alert(1)",
	} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Errorf("ParseOrigins(%q): no error", bad)
		}
	}
}

// A hover style outside @media (hover: hover) sticks on touch screens
// after a tap: every :hover rule must be inside one.
func TestHoverOnlyWhereHovering(t *testing.T) {
	b, err := os.ReadFile("assets/app.css")
	if err != nil {
		t.Fatal(err)
	}
	css := string(b)
	if !strings.Contains(css, "@media (hover: hover)") {
		t.Fatal("app.css has no @media (hover: hover) block")
	}
	depth, inHover, hoverDepth := 0, false, 0
	for i, line := range strings.Split(css, "\n") {
		if strings.Contains(line, "@media (hover: hover)") {
			inHover, hoverDepth = true, depth
		}
		if strings.Contains(line, ":hover") && !inHover {
			t.Errorf("app.css:%d: %s is outside @media (hover: hover)", i+1, strings.TrimSpace(line))
		}
		depth += strings.Count(line, "{") - strings.Count(line, "}")
		if inHover && depth <= hoverDepth {
			inHover = false
		}
	}
}
