// Package admin is the operator's side of sessiond: merchant
// administration and online backup, as Ops over a session.Service, served
// by a running server as HTTP on a Unix socket (mode 0600, beside the data
// file by default), and a Client that the CLI uses on that socket. The CLI
// runs the same Ops on a stopped data file, so every command works
// whether the server runs or not.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/web"
)

// Merchant is what the admin commands show of a merchant: never a secret.
type Merchant struct {
	ID        string    `json:"merchant_id"`
	Name      string    `json:"name"`
	PublicKey string    `json:"public_key"`
	Created   time.Time `json:"created"`
	Disabled  bool      `json:"disabled"`
	// OldCallbackSecretUntil, if set, is when the callback secret rotated
	// out stops signing beside the new one.
	OldCallbackSecretUntil *time.Time `json:"old_callback_secret_until,omitempty"`
	// FrameAncestors are the origins that may embed the merchant's hosted
	// pages, beyond the server's --frame-ancestors.
	FrameAncestors []string `json:"frame_ancestors,omitempty"`
}

func view(m *session.Merchant, now time.Time) Merchant {
	v := Merchant{ID: m.ID, Name: m.Name, PublicKey: m.PublicKey, Created: m.Created, Disabled: m.Disabled, FrameAncestors: m.FrameAncestors}
	if m.PreviousCallbackSecret != "" && now.Before(m.PreviousCallbackUntil) {
		t := m.PreviousCallbackUntil
		v.OldCallbackSecretUntil = &t
	}
	return v
}

// Error is a refusal of an admin operation, as an operator reads it.
type Error struct {
	Code session.Code
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Message is err as an operator reads it: a domain error's message
// without its package prefix, anything else whole.
func Message(err error) string {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Msg
	}
	var se *session.Error
	if errors.As(err, &se) {
		if se.Field != "" {
			return se.Field + ": " + se.Message
		}
		return se.Message
	}
	return err.Error()
}

// Admin is what the admin commands need. Ops has it over a service;
// Client over a running server's socket.
type Admin interface {
	AddMerchant(ctx context.Context, name string) (session.Credentials, error)
	Merchants(ctx context.Context) ([]Merchant, error)
	Merchant(ctx context.Context, ref string) (Merchant, error)
	RotateSecret(ctx context.Context, ref string) (session.Credentials, error)
	RotateCallbackSecret(ctx context.Context, ref string, overlap time.Duration) (session.Credentials, error)
	SetDisabled(ctx context.Context, ref string, disabled bool) (Merchant, error)
	RevokeTokens(ctx context.Context, ref string) error
	// SetFrameAncestors replaces the origins (a comma-separated list, ""
	// for none) that may embed the merchant's hosted pages.
	SetFrameAncestors(ctx context.Context, ref, origins string) (Merchant, error)
	// Backup writes a consistent snapshot of the data file to w.
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

var (
	_ Admin = (*Ops)(nil)
	_ Admin = (*Client)(nil)
)

// Ops are the admin operations on a service and its store.
type Ops struct {
	Svc *session.Service
	// Snapshot writes a consistent copy of the data file to w.
	Snapshot func(w io.Writer) (int64, error)
}

func (o *Ops) find(ctx context.Context, ref string) (*session.Merchant, error) {
	m, err := o.Svc.FindMerchant(ctx, ref)
	if errors.Is(err, session.ErrNotFound) {
		return nil, &Error{Code: session.CodeNotFound, Msg: fmt.Sprintf("no merchant with id or public key %q", ref)}
	}
	return m, err
}

// AddMerchant makes a merchant with generated credentials.
func (o *Ops) AddMerchant(ctx context.Context, name string) (session.Credentials, error) {
	_, cr, err := o.Svc.AddMerchant(ctx, name, session.Credentials{})
	return cr, err
}

// Merchants lists every merchant, oldest first.
func (o *Ops) Merchants(ctx context.Context) ([]Merchant, error) {
	ms, err := o.Svc.Merchants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Merchant, 0, len(ms))
	for _, m := range ms {
		out = append(out, view(m, o.Svc.Now()))
	}
	return out, nil
}

// Merchant shows the merchant whose id or public key is ref.
func (o *Ops) Merchant(ctx context.Context, ref string) (Merchant, error) {
	m, err := o.find(ctx, ref)
	if err != nil {
		return Merchant{}, err
	}
	return view(m, o.Svc.Now()), nil
}

// RotateSecret gives the merchant a new secret and revokes its tokens.
func (o *Ops) RotateSecret(ctx context.Context, ref string) (session.Credentials, error) {
	m, err := o.find(ctx, ref)
	if err != nil {
		return session.Credentials{}, err
	}
	return o.Svc.RotateSecret(ctx, m.ID)
}

// RotateCallbackSecret gives the merchant a new callback secret; the old
// one signs beside it for overlap.
func (o *Ops) RotateCallbackSecret(ctx context.Context, ref string, overlap time.Duration) (session.Credentials, error) {
	m, err := o.find(ctx, ref)
	if err != nil {
		return session.Credentials{}, err
	}
	return o.Svc.RotateCallbackSecret(ctx, m.ID, overlap)
}

// SetDisabled disables (revoking its tokens) or enables the merchant.
func (o *Ops) SetDisabled(ctx context.Context, ref string, disabled bool) (Merchant, error) {
	m, err := o.find(ctx, ref)
	if err != nil {
		return Merchant{}, err
	}
	if m, err = o.Svc.SetMerchantDisabled(ctx, m.ID, disabled); err != nil {
		return Merchant{}, err
	}
	return view(m, o.Svc.Now()), nil
}

// RevokeTokens revokes every token of the merchant.
func (o *Ops) RevokeTokens(ctx context.Context, ref string) error {
	m, err := o.find(ctx, ref)
	if err != nil {
		return err
	}
	return o.Svc.RevokeTokens(ctx, m.ID)
}

// SetFrameAncestors replaces the origins that may embed the merchant's
// hosted pages; origins is a comma-separated list (web.ParseOrigins), ""
// for none.
func (o *Ops) SetFrameAncestors(ctx context.Context, ref, origins string) (Merchant, error) {
	list, err := web.ParseOrigins(origins)
	if err != nil {
		return Merchant{}, &Error{Code: session.CodeInvalid, Msg: strings.TrimPrefix(err.Error(), "web: ")}
	}
	m, err := o.find(ctx, ref)
	if err != nil {
		return Merchant{}, err
	}
	if m, err = o.Svc.SetFrameAncestors(ctx, m.ID, list); err != nil {
		return Merchant{}, err
	}
	return view(m, o.Svc.Now()), nil
}

// Backup writes a consistent snapshot of the data file to w.
func (o *Ops) Backup(ctx context.Context, w io.Writer) (int64, error) { return o.Snapshot(w) }

// DefaultSocket is the admin socket's path for the data file at db.
func DefaultSocket(db string) string { return db + ".admin.sock" }

// Listen makes the Unix socket at path, readable and writable by this
// user only. A socket left behind by a server that is gone is replaced;
// one that a live server answers on is an error.
func Listen(path string) (net.Listener, error) {
	if _, err := os.Lstat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: %s is in use by a running server", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("admin: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// Handler serves Ops as HTTP: JSON answers, and the backup as a stream.
func Handler(o *Ops) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any, err error) {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			status := http.StatusInternalServerError
			code := session.ErrorCode(err)
			var ae *Error
			if errors.As(err, &ae) {
				code = ae.Code
			}
			switch code {
			case session.CodeNotFound:
				status = http.StatusNotFound
			case session.CodeInvalid, session.CodeConflict:
				status = http.StatusBadRequest
			}
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": Message(err)})
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /merchants", func(w http.ResponseWriter, r *http.Request) {
		cr, err := o.AddMerchant(r.Context(), r.URL.Query().Get("name"))
		reply(w, cr, err)
	})
	mux.HandleFunc("GET /merchants", func(w http.ResponseWriter, r *http.Request) {
		ms, err := o.Merchants(r.Context())
		reply(w, ms, err)
	})
	mux.HandleFunc("GET /merchants/{ref}", func(w http.ResponseWriter, r *http.Request) {
		m, err := o.Merchant(r.Context(), r.PathValue("ref"))
		reply(w, m, err)
	})
	mux.HandleFunc("POST /merchants/{ref}/{op}", func(w http.ResponseWriter, r *http.Request) {
		ctx, ref := r.Context(), r.PathValue("ref")
		switch r.PathValue("op") {
		case "rotate-secret":
			cr, err := o.RotateSecret(ctx, ref)
			reply(w, cr, err)
		case "rotate-callback-secret":
			overlap, err := time.ParseDuration(r.URL.Query().Get("overlap"))
			if err != nil {
				reply(w, nil, &Error{Code: session.CodeInvalid, Msg: "overlap: want a duration such as 24h"})
				return
			}
			cr, err := o.RotateCallbackSecret(ctx, ref, overlap)
			reply(w, cr, err)
		case "disable", "enable":
			m, err := o.SetDisabled(ctx, ref, r.PathValue("op") == "disable")
			reply(w, m, err)
		case "revoke-tokens":
			reply(w, struct{}{}, o.RevokeTokens(ctx, ref))
		case "frame-ancestors":
			m, err := o.SetFrameAncestors(ctx, ref, r.URL.Query().Get("origins"))
			reply(w, m, err)
		default:
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		// Past the header a failure can only cut the stream short; the
		// client compares the length it got with the trailer.
		w.Header().Set("Trailer", "X-Backup-Size")
		n, err := o.Backup(r.Context(), w)
		if err == nil {
			w.Header().Set("X-Backup-Size", fmt.Sprint(n))
		}
	})
	return mux
}

// Client speaks to a running server's admin socket.
type Client struct {
	http *http.Client
}

// Dial returns a Client for the socket at path if a server answers on
// it, or ok false if none does (no socket, or one left behind).
func Dial(path string) (c *Client, ok bool) {
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil, false
	}
	conn.Close()
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}, true
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values, out any) error {
	u := "http://admin" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		code := session.CodeInternal
		switch resp.StatusCode {
		case http.StatusNotFound:
			code = session.CodeNotFound
		case http.StatusBadRequest:
			code = session.CodeInvalid
		}
		return &Error{Code: code, Msg: e.Error}
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (c *Client) AddMerchant(ctx context.Context, name string) (session.Credentials, error) {
	var cr session.Credentials
	return cr, c.do(ctx, http.MethodPost, "/merchants", url.Values{"name": {name}}, &cr)
}

func (c *Client) Merchants(ctx context.Context) ([]Merchant, error) {
	var ms []Merchant
	return ms, c.do(ctx, http.MethodGet, "/merchants", nil, &ms)
}

func (c *Client) Merchant(ctx context.Context, ref string) (Merchant, error) {
	var m Merchant
	return m, c.do(ctx, http.MethodGet, "/merchants/"+url.PathEscape(ref), nil, &m)
}

func (c *Client) RotateSecret(ctx context.Context, ref string) (session.Credentials, error) {
	var cr session.Credentials
	return cr, c.do(ctx, http.MethodPost, "/merchants/"+url.PathEscape(ref)+"/rotate-secret", nil, &cr)
}

func (c *Client) RotateCallbackSecret(ctx context.Context, ref string, overlap time.Duration) (session.Credentials, error) {
	var cr session.Credentials
	q := url.Values{"overlap": {overlap.String()}}
	return cr, c.do(ctx, http.MethodPost, "/merchants/"+url.PathEscape(ref)+"/rotate-callback-secret", q, &cr)
}

func (c *Client) SetDisabled(ctx context.Context, ref string, disabled bool) (Merchant, error) {
	op := "enable"
	if disabled {
		op = "disable"
	}
	var m Merchant
	return m, c.do(ctx, http.MethodPost, "/merchants/"+url.PathEscape(ref)+"/"+op, nil, &m)
}

func (c *Client) RevokeTokens(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodPost, "/merchants/"+url.PathEscape(ref)+"/revoke-tokens", nil, &struct{}{})
}

func (c *Client) SetFrameAncestors(ctx context.Context, ref, origins string) (Merchant, error) {
	var m Merchant
	q := url.Values{"origins": {origins}}
	return m, c.do(ctx, http.MethodPost, "/merchants/"+url.PathEscape(ref)+"/frame-ancestors", q, &m)
}

// Backup streams the server's snapshot to w, and fails unless all of it
// arrived.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://admin/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("admin socket: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("admin socket: backup: %s", resp.Status)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("admin socket: backup: %w", err)
	}
	if want := resp.Trailer.Get("X-Backup-Size"); want != fmt.Sprint(n) {
		return n, fmt.Errorf("admin socket: backup cut short: got %d bytes, the server sent %s", n, strings.TrimSpace(want+" (unknown)"))
	}
	return n, nil
}
