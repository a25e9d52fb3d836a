package web

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Languages are the languages the page speaks, each with its message file
// assets/i18n/<language>.json; the first is the fallback.
var Languages = []string{"en", "sv", "fi", "nb", "da", "de", "nl", "pl", "et", "lv", "lt"}

// countryLanguages is the page's language for a session created with no
// locale of a supported language: the language of the country's market.
var countryLanguages = map[string]string{
	"se": "sv", "fi": "fi", "ax": "sv", "no": "nb", "dk": "da", "de": "de", "at": "de",
	"nl": "nl", "pl": "pl", "ee": "et", "lv": "lv", "lt": "lt",
}

// Language returns the page's language for a session's locale (a BCP 47
// tag such as "sv-SE" or "sv_SE") and country (ISO 3166-1 alpha-2): the
// locale's language if the page speaks it, else the country's, else
// English. Norwegian of any written form ("no", "nb", "nn") is "nb".
func Language(locale, country string) string {
	tag := strings.ToLower(strings.TrimSpace(locale))
	if i := strings.IndexAny(tag, "-_"); i >= 0 {
		tag = tag[:i]
	}
	if tag == "no" || tag == "nn" {
		tag = "nb"
	}
	if supported(tag) {
		return tag
	}
	if l, ok := countryLanguages[strings.ToLower(strings.TrimSpace(country))]; ok {
		return l
	}
	return Languages[0]
}

// acceptLanguage returns the first supported language of an
// Accept-Language header, by quality, else English.
func acceptLanguage(header string) string {
	type choice struct {
		lang string
		q    float64
	}
	var choices []choice
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if l := Language(tag, ""); q > 0 && (l != Languages[0] || strings.HasPrefix(strings.ToLower(tag), "en")) {
			choices = append(choices, choice{l, q})
		}
	}
	sort.SliceStable(choices, func(i, j int) bool { return choices[i].q > choices[j].q })
	if len(choices) > 0 {
		return choices[0].lang
	}
	return Languages[0]
}

func supported(lang string) bool {
	for _, l := range Languages {
		if l == lang {
			return true
		}
	}
	return false
}

// messages is one language's message file: each key holds a string, or
// for a message that depends on a count, an object of Intl.PluralRules
// categories ("one", "few", "other", …) to strings. Placeholders are
// written {name}.
type messages map[string]any

// loadMessages reads every language's message file.
func loadMessages(fsys fs.FS) (map[string]messages, error) {
	all := map[string]messages{}
	for _, l := range Languages {
		b, err := fs.ReadFile(fsys, path.Join("assets/i18n", l+".json"))
		if err != nil {
			return nil, fmt.Errorf("web: messages of %s: %w", l, err)
		}
		m := messages{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("web: messages of %s: %w", l, err)
		}
		for k, v := range m {
			switch v := v.(type) {
			case string:
			case map[string]any:
				for cat, s := range v {
					if _, ok := s.(string); !ok {
						return nil, fmt.Errorf("web: messages of %s: %s.%s is not a string", l, k, cat)
					}
				}
				if _, ok := v["other"]; !ok {
					return nil, fmt.Errorf("web: messages of %s: %s has no \"other\" form", l, k)
				}
			default:
				return nil, fmt.Errorf("web: messages of %s: %s is neither a string nor plural forms", l, k)
			}
		}
		all[l] = m
	}
	return all, nil
}

// text returns the message key of m with its {name} placeholders replaced
// by the pairs of args; a key that is not a plain string comes back as
// itself, so that a mistake shows on the page instead of breaking it.
func (m messages) text(key string, args ...string) string {
	s, ok := m[key].(string)
	if !ok {
		return key
	}
	for i := 0; i+1 < len(args); i += 2 {
		s = strings.ReplaceAll(s, "{"+args[i]+"}", args[i+1])
	}
	return s
}
