// Package web serves the end user's hosted page, /client/<token>, with its
// assets embedded in the binary.
package web

import (
	"context"
	"net/http"
)

// Page is what the hosted page needs to know of a session before its
// script runs.
type Page struct {
	// RedirectURI is where the page goes once the session is final; empty
	// for none.
	RedirectURI string
}

// Lookup returns the page of the session with the end-user token, and
// found=false for an unknown or malformed token.
type Lookup func(ctx context.Context, token string) (p Page, found bool, err error)

// Handler serves GET /client/{token} and the page's assets under
// /client/assets/.
func Handler(lookup Lookup) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /client/{token}", func(w http.ResponseWriter, r *http.Request) {
		_, found, err := lookup(r.Context(), r.PathValue("token"))
		if err != nil {
			http.Error(w, "Internal error.", http.StatusInternalServerError)
			return
		}
		if !found {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "the hosted page is not built yet", http.StatusNotImplemented)
	})
	return mux
}
