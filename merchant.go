package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
)

func merchant(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"merchant: want add NAME or list"}
	}
	fs := flag.NewFlagSet("merchant "+args[0], flag.ContinueOnError)
	dbPath := fs.String("db", "./sessiond.db", "database `file`")
	pos, err := parseFlags(fs, args[1:], stderr)
	if err != nil {
		return err
	}
	open := func() (*store.DB, error) {
		db, err := store.Open(*dbPath, store.Options{LockTimeout: time.Second})
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("%s is in use by a running server; stop it first", *dbPath)
		}
		return db, err
	}
	ctx := context.Background()
	switch args[0] {
	case "add":
		if len(pos) != 1 {
			return usageError{"merchant add: want exactly one NAME"}
		}
		db, err := open()
		if err != nil {
			return err
		}
		defer db.Close()
		_, cr, err := session.NewService(db).AddMerchant(ctx, pos[0], session.Credentials{})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "merchant_id      %s\npublic_key       %s\nsecret           %s\ncallback_secret  %s\n",
			cr.MerchantID, cr.PublicKey, cr.Secret, cr.CallbackSecret)
		fmt.Fprintln(stderr, "The secret is shown only now; it is stored hashed.")
		return db.Close()
	case "list":
		if len(pos) != 0 {
			return usageError{"merchant list takes no arguments"}
		}
		db, err := open()
		if err != nil {
			return err
		}
		defer db.Close()
		ms, err := session.NewService(db).Merchants(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MERCHANT_ID\tNAME\tPUBLIC_KEY\tCREATED")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.Name, m.PublicKey, m.Created.UTC().Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return usageError{fmt.Sprintf("merchant: unknown subcommand %q (want add or list)", args[0])}
}
