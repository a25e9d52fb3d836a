// Package pgtest gives tests a PostgreSQL database of their own, on the
// server named by SESSIOND_TEST_POSTGRES. Without that variable the tests
// that ask for one are skipped, saying how to run them, except in CI
// (CI=true, or SESSIOND_REQUIRE_POSTGRES=1), where that is a failure.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL is the variable naming the test server: a postgres:// URL of a
// role that may create databases.
const EnvURL = "SESSIOND_TEST_POSTGRES"

const howTo = EnvURL + " is not set: PostgreSQL tests skipped. To run them, start a throw-away server " +
	"with `source .ci/postgres.sh && pg_start 55432` (bash, as root), which sets it, and `pg_stop` after."

// ServerURL returns the test server's URL, or skips the test when none is
// configured; it fails the test instead under CI=true or
// SESSIOND_REQUIRE_POSTGRES=1 (as .ci/run sets).
func ServerURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(EnvURL)
	if u == "" {
		if os.Getenv("CI") == "true" || os.Getenv("SESSIOND_REQUIRE_POSTGRES") == "1" {
			tb.Fatal(howTo)
		}
		tb.Skip(howTo)
	}
	return u
}

// URL creates an empty database on the test server and returns its URL;
// the database is dropped when the test ends.
func URL(tb testing.TB) string {
	tb.Helper()
	server := ServerURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("pgtest: connect to %s: %v", EnvURL, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "sessiond_test_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Errorf("pgtest: connect to drop %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("pgtest: %s is not a URL", EnvURL)
	}
	u.Path = "/" + name
	return u.String()
}
