package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
)

func seed(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	dbPath := fs.String("db", "./sessiond.db", "database `file`")
	n := fs.Int("sessions", 1_000_000, "deposit sessions to store")
	due := fs.Int("due", 0, "how many of them are already past their deadline")
	merchantSpec := fs.String("merchant", "pk_seed:sk_seed", "`PUBLIC_KEY:SECRET` of the merchant that owns them (created if missing)")
	prefix := fs.String("prefix", "seed-", "merchant_reference prefix; the i-th session gets PREFIXi")
	if _, err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	pk, secret, ok := strings.Cut(*merchantSpec, ":")
	if !ok || *n < 1 || *due < 0 || *due > *n {
		return usageError{"seed: want --merchant PUBLIC_KEY:SECRET, --sessions ≥ 1 and 0 ≤ --due ≤ --sessions"}
	}
	db, err := store.Open(*dbPath, store.Options{LockTimeout: time.Second})
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%s is in use by a running server; stop it first", *dbPath)
	}
	if err != nil {
		return err
	}
	defer db.Close()
	svc := session.NewService(db)
	ctx := context.Background()
	m, _, _, err := svc.EnsureMerchant(ctx, session.Credentials{PublicKey: pk, Secret: secret})
	if err != nil {
		return err
	}
	start := time.Now()
	err = svc.Seed(ctx, m, *n, *due, 10_000, *prefix, func(done int) {
		fmt.Fprintf(stderr, "\rseed: %d/%d sessions (%.0f/s)", done, *n, float64(done)/time.Since(start).Seconds())
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	info, err := os.Stat(*dbPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stored %d sessions (%d past their deadline) for merchant %s in %s; %s is %d bytes\n",
		*n, *due, pk, time.Since(start).Round(time.Millisecond), *dbPath, info.Size())
	return nil
}
