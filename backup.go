package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sessiond/sessiond/admin"
	"github.com/sessiond/sessiond/store"
)

var backupCmd = &command{
	name:    "backup",
	summary: "write a consistent copy of the data file, from the running server or a stopped file",
	args:    "OUT [flags]",
	long: `With a server running, the copy is one read transaction streamed through its
admin socket while it keeps serving; every write acknowledged before the
backup began is in it. OUT is written under a temporary name, synced, then
renamed, so it is either complete or absent.`,
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		db, socket, resolve := dataFlags(f)
		return func(env *cmdEnv, pos []string) error {
			if len(pos) != 1 {
				return usagef("sessiond backup: want exactly one OUT, such as: sessiond backup sessiond-2026-12-01.db")
			}
			resolve()
			out := pos[0]
			var n int64
			var via string
			err := store.WriteAtomic(out, func(tmp string) error {
				f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer f.Close()
				if c, ok := admin.Dial(*socket); ok {
					via = "the running server (" + *socket + ")"
					n, err = c.Backup(context.Background(), f)
				} else {
					via = "the stopped file " + *db
					n, err = store.BackupFile(*db, f)
				}
				if err != nil {
					return err
				}
				return f.Close()
			})
			if err != nil {
				return withHint(err, *db, *socket)
			}
			fmt.Fprintf(env.stdout, "backed up %s to %s: %d bytes, from %s\n", *db, out, n, via)
			return nil
		}
	},
}

var restoreCmd = &command{
	name:    "restore",
	summary: "put a backup in place as the data file; refuses a file in use",
	args:    "IN [flags]",
	long: `Copies IN to --db under a temporary name, synced, then renamed. A data file a
server holds is never touched; an existing stopped one is replaced only
with --force.`,
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		db, _, _ := dataFlags(f)
		force := false
		f.Bool(&force, "force", "replace an existing (stopped) data file")
		return func(env *cmdEnv, pos []string) error {
			if len(pos) != 1 {
				return usagef("sessiond restore: want exactly one IN, such as: sessiond restore sessiond-2026-12-01.db --db /var/lib/sessiond/sessiond.db")
			}
			in := pos[0]
			if inUse, err := store.InUse(in); err != nil {
				return err
			} else if inUse {
				return fmt.Errorf("%s is in use by a running server; restore from a backup of it (sessiond backup)", in)
			}
			if _, err := os.Stat(*db); err == nil {
				if inUse, err := store.InUse(*db); err != nil {
					return err
				} else if inUse {
					return fmt.Errorf("%s is in use by a running server; stop it before restoring over it", *db)
				}
				if !force {
					return fmt.Errorf("%s exists; --force replaces it (keep a backup of it first)", *db)
				}
			}
			if err := os.MkdirAll(filepath.Dir(*db), 0o700); err != nil {
				return err
			}
			var n int64
			err := store.WriteAtomic(*db, func(tmp string) error {
				w, err := os.OpenFile(tmp, os.O_WRONLY|os.O_TRUNC, 0o600)
				if err != nil {
					return err
				}
				defer w.Close()
				n, err = store.BackupFile(in, w)
				if err != nil {
					return err
				}
				return w.Close()
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "restored %s to %s: %d bytes\n", in, *db, n)
			return nil
		}
	},
}

var compactCmd = &command{
	name:    "compact",
	summary: "rewrite a stopped data file without its free pages",
	args:    "IN OUT",
	long: `bbolt reuses freed pages but never gives them back; compact writes the live
data of IN into a new, smaller OUT (temporary name, synced, renamed). IN
must be stopped; swap OUT in while the server is stopped.`,
	setup: func(f *flagSet) func(*cmdEnv, []string) error {
		return func(env *cmdEnv, pos []string) error {
			if len(pos) != 2 {
				return usagef("sessiond compact: want IN and OUT, such as: sessiond compact sessiond.db sessiond-compact.db")
			}
			in, out := pos[0], pos[1]
			before, err := os.Stat(in)
			if err != nil {
				return err
			}
			if err := store.Compact(in, out); err != nil {
				return withHint(err, in, "")
			}
			after, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "compacted %s (%d bytes) to %s (%d bytes)\n", in, before.Size(), out, after.Size())
			return nil
		}
	},
}

// withHint adds what to do to a store.ErrLocked.
func withHint(err error, db, socket string) error {
	if inUse, _ := store.InUse(db); inUse {
		if socket != "" {
			return fmt.Errorf("%w (a server holds %s and no admin socket answers at %s)", err, db, socket)
		}
		return fmt.Errorf("%w (a server holds %s; stop it first)", err, db)
	}
	return err
}
