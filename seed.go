package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sessiond/sessiond/postgres"
	"github.com/sessiond/sessiond/session"
	"github.com/sessiond/sessiond/store"
	"golang.org/x/crypto/argon2"
)

var seedCmd = &command{
	name:    "seed",
	summary: "store many deposit sessions at once in a stopped data file, for scale tests",
	args:    "[flags]",
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		dbPath, n, due, merchantSpec, prefix := "./sessiond.db", 1_000_000, 0, "pk_seed:sk_seed", "seed-"
		f.String(&dbPath, "db", "FILE", "data file")
		f.Int(&n, "sessions", "N", "deposit sessions to store")
		f.Int(&due, "due", "N", "how many of them are already past their deadline")
		f.String(&merchantSpec, "merchant", "PUBLIC_KEY:SECRET", "merchant that owns them (created if missing)")
		f.String(&prefix, "prefix", "PREFIX", "merchant_reference prefix; the i-th session gets PREFIXi")
		return func(env *cmdEnv, pos []string) error {
			if len(pos) > 0 {
				return usagef("sessiond seed: takes flags only, not %q", pos[0])
			}
			return seed(env, dbPath, n, due, merchantSpec, prefix)
		}
	},
}

func seed(env *cmdEnv, dbPath string, n, due int, merchantSpec, prefix string) error {
	stdout, stderr := env.stdout, env.stderr
	pk, secret, ok := strings.Cut(merchantSpec, ":")
	if !ok || n < 1 || due > n {
		return usagef("sessiond seed: want --merchant PUBLIC_KEY:SECRET, --sessions ≥ 1 and --due ≤ --sessions")
	}
	var db interface {
		session.Store
		Close() error
	}
	var err error
	if postgres.IsURL(dbPath) {
		db, err = postgres.Open(context.Background(), dbPath, postgres.Options{})
	} else {
		var bolt *store.DB
		bolt, err = store.Open(dbPath, store.Options{LockTimeout: time.Second})
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%s is in use by a running server; stop it first", dbPath)
		}
		db = bolt
	}
	if err != nil {
		return err
	}
	defer db.Close()
	svc := session.NewService(db, argon2.IDKey)
	ctx := context.Background()
	m, _, _, err := svc.EnsureMerchant(ctx, session.Credentials{PublicKey: pk, Secret: secret})
	if err != nil {
		return err
	}
	start := time.Now()
	err = svc.Seed(ctx, m, n, due, 10_000, prefix, func(done int) {
		fmt.Fprintf(stderr, "\rseed: %d/%d sessions (%.0f/s)", done, n, float64(done)/time.Since(start).Seconds())
	})
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	info, err := os.Stat(dbPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "stored %d sessions (%d past their deadline) for merchant %s in %s; %s is %d bytes\n",
		n, due, pk, time.Since(start).Round(time.Millisecond), dbPath, info.Size())
	return nil
}
