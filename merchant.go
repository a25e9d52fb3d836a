package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
)

var merchantCmd = &command{
	name:    "merchant",
	summary: "add, list and show merchants",
	args:    "COMMAND [flags]",
	sub: []*command{
		{
			name:    "add",
			summary: "make a merchant; prints its credentials once",
			args:    "NAME [flags]",
			setup: func(f *flagSet) func(*cmdEnv, []string) error {
				dbPath := dbFlag(f)
				return func(env *cmdEnv, pos []string) error {
					if len(pos) != 1 {
						return usagef("sessiond merchant add: want exactly one NAME, such as: sessiond merchant add shop")
					}
					return withStore(dbPath, func(svc *session.Service) error {
						_, cr, err := svc.AddMerchant(context.Background(), pos[0], session.Credentials{})
						if err != nil {
							return err
						}
						fmt.Fprintf(env.stdout, "merchant_id      %s\npublic_key       %s\nsecret           %s\ncallback_secret  %s\n",
							cr.MerchantID, cr.PublicKey, cr.Secret, cr.CallbackSecret)
						fmt.Fprintln(env.stderr, "The secret is shown only now; it is stored hashed.")
						return nil
					})
				}
			},
		},
		{
			name:    "list",
			summary: "list merchants",
			args:    "[flags]",
			setup: func(f *flagSet) func(*cmdEnv, []string) error {
				dbPath := dbFlag(f)
				return func(env *cmdEnv, pos []string) error {
					if len(pos) != 0 {
						return usagef("sessiond merchant list: takes no arguments")
					}
					return withStore(dbPath, func(svc *session.Service) error {
						ms, err := svc.Merchants(context.Background())
						if err != nil {
							return err
						}
						tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
						fmt.Fprintln(tw, "MERCHANT_ID\tNAME\tPUBLIC_KEY\tCREATED")
						for _, m := range ms {
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.Name, m.PublicKey, m.Created.UTC().Format(time.RFC3339))
						}
						return tw.Flush()
					})
				}
			},
		},
	},
}

// dbFlag defines --db on f.
func dbFlag(f *flagSet) *string {
	p := new(string)
	*p = "./sessiond.db"
	f.String(p, "db", "FILE", "data file")
	return p
}

// withStore opens the stopped data file at *path, runs fn on a service
// over it, and closes it.
func withStore(path *string, fn func(*session.Service) error) error {
	db, err := store.Open(*path, store.Options{LockTimeout: time.Second})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is in use by a running server; stop it first", *path)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if err := fn(session.NewService(db)); err != nil {
		return err
	}
	return db.Close()
}
