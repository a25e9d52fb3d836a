package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond/admin"
	"github.com/sessiond/sessiond/postgres"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"golang.org/x/crypto/argon2"
)

var merchantCmd = &command{
	name:    "merchant",
	summary: "add, list, show, rotate, disable merchants, live or on a stopped file",
	args:    "COMMAND [flags]",
	long: `Each command goes through the running server's admin socket when one answers
(--admin-socket, beside --db by default), so it takes effect at once; with
no server running it works on the data file itself. REF is a merchant_id or
a public_key.`,
	sub: []*command{
		{
			name: "add", summary: "make a merchant; prints its credentials once", args: "NAME [flags]",
			setup: adminCommand(1, "NAME", func(ctx context.Context, env *cmdEnv, a admin.Admin, pos []string) error {
				cr, err := a.AddMerchant(ctx, pos[0]) // on a stopped file that does not exist yet, it is made
				if err != nil {
					return err
				}
				printCredentials(env.stdout, cr, true, true)
				fmt.Fprintln(env.stderr, "The secret is shown only now; it is stored hashed.")
				return nil
			}),
		},
		{
			name: "list", summary: "list merchants", args: "[flags]",
			setup: adminCommand(0, "", func(ctx context.Context, env *cmdEnv, a admin.Admin, _ []string) error {
				ms, err := a.Merchants(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "MERCHANT_ID\tNAME\tPUBLIC_KEY\tCREATED\tSTATUS")
				for _, m := range ms {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.Name, m.PublicKey, m.Created.UTC().Format(time.RFC3339), status(m))
				}
				return tw.Flush()
			}),
		},
		{
			name: "show", summary: "show one merchant", args: "REF [flags]",
			setup: adminCommand(1, "REF", func(ctx context.Context, env *cmdEnv, a admin.Admin, pos []string) error {
				m, err := a.Merchant(ctx, pos[0])
				if err != nil {
					return err
				}
				printMerchant(env.stdout, m)
				return nil
			}),
		},
		{
			name: "rotate-secret", summary: "give a merchant a new secret; its tokens are revoked", args: "REF [flags]",
			setup: adminCommand(1, "REF", func(ctx context.Context, env *cmdEnv, a admin.Admin, pos []string) error {
				cr, err := a.RotateSecret(ctx, pos[0])
				if err != nil {
					return err
				}
				printCredentials(env.stdout, cr, true, false)
				fmt.Fprintln(env.stderr, "The new secret is shown only now; the old one and every token of this merchant no longer work.")
				return nil
			}),
		},
		{
			name: "rotate-callback-secret", summary: "give a merchant a new callback secret; the old one keeps signing for --overlap", args: "REF [flags]",
			setup: func(f *flagSet) func(*cmdEnv, []string) error {
				overlap := session.DefaultCallbackOverlap
				run := adminCommand(1, "REF", func(ctx context.Context, env *cmdEnv, a admin.Admin, pos []string) error {
					cr, err := a.RotateCallbackSecret(ctx, pos[0], overlap)
					if err != nil {
						return err
					}
					printCredentials(env.stdout, cr, false, true)
					if overlap > 0 {
						fmt.Fprintf(env.stderr, "Callbacks carry a signature by each secret until %s; switch the receiver within %s.\n",
							time.Now().Add(overlap).UTC().Format(time.RFC3339), humanDuration(overlap))
					} else {
						fmt.Fprintln(env.stderr, "The old callback secret no longer signs.")
					}
					return nil
				})(f)
				f.Duration(&overlap, "overlap", "how long the old callback secret keeps signing beside the new one (0: stop at once)")
				return run
			},
		},
		{
			name: "disable", summary: "stop a merchant: its tokens are revoked and it cannot authorize", args: "REF [flags]",
			setup: adminCommand(1, "REF", func(ctx context.Context, env *cmdEnv, a admin.Admin, pos []string) error {
				m, err := a.SetDisabled(ctx, pos[0], true)
				if err != nil {
					return err
				}
				printMerchant(env.stdout, m)
				return nil
			}),
		},
		{
			name: "enable", summary: "let a disabled merchant authorize again", args: "REF [flags]",
			setup: adminCommand(1, "REF", func(ctx context.Context, env *cmdEnv, a admin.Admin, pos []string) error {
				m, err := a.SetDisabled(ctx, pos[0], false)
				if err != nil {
					return err
				}
				printMerchant(env.stdout, m)
				return nil
			}),
		},
		{
			name: "set-frame-ancestors", summary: "let the merchant's own origins embed its hosted pages in a frame", args: "REF --origins ORIGINS [flags]",
			setup: func(f *flagSet) func(*cmdEnv, []string) error {
				var origins string
				run := adminCommand(1, "REF", func(ctx context.Context, env *cmdEnv, a admin.Admin, pos []string) error {
					if !f.given["origins"] {
						return usagef("%s: --origins is required (\"\" for none)", f.fs.Name())
					}
					m, err := a.SetFrameAncestors(ctx, pos[0], origins)
					if err != nil {
						return err
					}
					printMerchant(env.stdout, m)
					return nil
				})(f)
				f.String(&origins, "origins", "ORIGINS", "comma-separated scheme://host[:port], beyond serve's --frame-ancestors; \"\" for none")
				return run
			},
		},
		{
			name: "revoke-tokens", summary: "revoke every token of a merchant; it authorizes again with its secret", args: "REF [flags]",
			setup: adminCommand(1, "REF", func(ctx context.Context, env *cmdEnv, a admin.Admin, pos []string) error {
				if err := a.RevokeTokens(ctx, pos[0]); err != nil {
					return err
				}
				fmt.Fprintf(env.stdout, "revoked every token of %s\n", pos[0])
				return nil
			}),
		},
	},
}

func status(m admin.Merchant) string {
	if m.Disabled {
		return "disabled"
	}
	return "enabled"
}

func printMerchant(w io.Writer, m admin.Merchant) {
	fmt.Fprintf(w, "merchant_id      %s\nname             %s\npublic_key       %s\ncreated          %s\nstatus           %s\n",
		m.ID, m.Name, m.PublicKey, m.Created.UTC().Format(time.RFC3339), status(m))
	if len(m.FrameAncestors) > 0 {
		fmt.Fprintf(w, "frame_ancestors  %s\n", strings.Join(m.FrameAncestors, " "))
	}
	if m.OldCallbackSecretUntil != nil {
		fmt.Fprintf(w, "old callback secret signs until %s\n", m.OldCallbackSecretUntil.UTC().Format(time.RFC3339))
	}
}

func printCredentials(w io.Writer, cr session.Credentials, secret, callbackSecret bool) {
	fmt.Fprintf(w, "merchant_id      %s\npublic_key       %s\n", cr.MerchantID, cr.PublicKey)
	if secret {
		fmt.Fprintf(w, "secret           %s\n", cr.Secret)
	}
	if callbackSecret {
		fmt.Fprintf(w, "callback_secret  %s\n", cr.CallbackSecret)
	}
}

// dataFlags defines --db and --admin-socket on f. After parsing, the
// socket is the one beside --db unless --admin-socket was given.
func dataFlags(f *flagSet) (db, socket *string, resolve func()) {
	db, socket = new(string), new(string)
	*db = "./sessiond.db"
	f.group("Data")
	f.String(db, "db", "FILE", "data file")
	f.String(socket, "admin-socket", "PATH", "admin socket of the running server (default FILE.admin.sock beside --db)")
	return db, socket, func() {
		if !f.given["admin-socket"] && !postgres.IsURL(*db) {
			*socket = admin.DefaultSocket(*db)
		}
	}
}

// adminCommand is the setup of a command that takes n positional
// arguments (named what) and runs fn on the running server's admin
// socket, or, with none answering, on the stopped data file.
func adminCommand(n int, what string, fn func(context.Context, *cmdEnv, admin.Admin, []string) error) func(*flagSet) func(*cmdEnv, []string) error {
	return func(f *flagSet) func(*cmdEnv, []string) error {
		db, socket, resolve := dataFlags(f)
		return func(env *cmdEnv, pos []string) error {
			if len(pos) != n {
				if n == 0 {
					return usagef("%s: takes no arguments", f.fs.Name())
				}
				return usagef("%s: want exactly one %s", f.fs.Name(), what)
			}
			resolve()
			err := withAdmin(*db, *socket, what == "NAME", func(a admin.Admin) error {
				return fn(context.Background(), env, a, pos)
			})
			if err != nil {
				return errors.New(admin.Message(err))
			}
			return nil
		}
	}
}

// withAdmin runs fn on the admin socket if a server answers on it, else on
// the stopped data file at db, which must exist unless create.
func withAdmin(db, socket string, create bool, fn func(admin.Admin) error) error {
	if socket != "" {
		if c, ok := admin.Dial(socket); ok {
			return fn(c)
		}
	}
	if postgres.IsURL(db) {
		// The database is shared: work on it directly, servers running or not.
		d, err := postgres.Open(context.Background(), db, postgres.Options{})
		if err != nil {
			return err
		}
		defer d.Close()
		return fn(&admin.Ops{Svc: session.NewService(d, argon2.IDKey), Snapshot: func(io.Writer) (int64, error) {
			return 0, errors.New("a PostgreSQL database is backed up with pg_dump")
		}})
	}
	if _, err := os.Stat(db); err != nil && !create {
		return fmt.Errorf("no server answers on %s and there is no data file %s; give --db (and --admin-socket if the server has its own)", socket, db)
	}
	d, err := store.Open(db, store.Options{LockTimeout: time.Second})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is in use by a running server that has no admin socket at %q; give its --admin-socket, or stop it first", db, socket)
	}
	if err != nil {
		return err
	}
	defer d.Close()
	if err := fn(&admin.Ops{Svc: session.NewService(d, argon2.IDKey), Snapshot: d.Backup}); err != nil {
		return err
	}
	return d.Close()
}
