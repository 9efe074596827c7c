package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/assistants-go/assistants/server/store"
	"github.com/assistants-go/assistants/server/store/memory"
	"github.com/assistants-go/assistants/server/store/postgres"
	"github.com/assistants-go/assistants/server/store/sqlite"
)

// envDatabaseURL is read when --database-url is not given.
const envDatabaseURL = "ASSISTANTS_DATABASE_URL"

// storeFlags choose where serve keeps its data: SQLite under --data (the
// default, in defaultDataDir), PostgreSQL at --database-url, or process
// memory with --memory. At most one of the three may be given.
type storeFlags struct {
	data        string
	memory      bool
	databaseURL string
	getenv      func(string) string
}

// addStoreFlags registers --data, --memory and --database-url on fs.
// --database-url defaults to $ASSISTANTS_DATABASE_URL.
func addStoreFlags(fs *flag.FlagSet, getenv func(string) string) *storeFlags {
	s := &storeFlags{getenv: getenv}
	fs.StringVar(&s.data, "data", "", "keep the data in SQLite under this directory (default: "+dataDirDoc+")")
	fs.BoolVar(&s.memory, "memory", false, "keep the data in process memory only: everything is lost when the process ends")
	fs.StringVar(&s.databaseURL, "database-url", getenv(envDatabaseURL), "keep the data in PostgreSQL, e.g. postgres://user@host:5432/db; several replicas may share it (env "+envDatabaseURL+")")
	return s
}

// dataDirDoc describes defaultDataDir in the flag's help.
const dataDirDoc = "$XDG_DATA_HOME/assistants, or ~/.local/share/assistants"

// defaultDataDir is $XDG_DATA_HOME/assistants when XDG_DATA_HOME is set
// (and absolute), else ~/.local/share/assistants.
func defaultDataDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "assistants"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no data directory: %w (give one with --data, or use --memory)", err)
		}
		home = h
	}
	return filepath.Join(home, ".local", "share", "assistants"), nil
}

// storeKind names the store chosen by the flags.
type storeKind int

const (
	kindSQLite storeKind = iota
	kindMemory
	kindPostgres
)

// choice checks the flags and returns the chosen store and its location:
// the data directory for SQLite, the URL for PostgreSQL.
func (s *storeFlags) choice(explicitURL bool) (storeKind, string, error) {
	n := 0
	if s.data != "" {
		n++
	}
	if s.memory {
		n++
	}
	if explicitURL {
		n++
	}
	if n > 1 {
		return 0, "", usagef("serve: give at most one of --data, --memory and --database-url")
	}
	switch {
	case s.memory:
		return kindMemory, "", nil
	case s.data != "":
		dir, err := filepath.Abs(s.data)
		if err != nil {
			return 0, "", usagef("serve: --data %q: %w", s.data, err)
		}
		return kindSQLite, dir, nil
	case s.databaseURL != "":
		u, err := url.Parse(s.databaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			// url.Parse errors quote the URL, which may hold a password.
			return 0, "", usagef("serve: --database-url: want a postgres:// or postgresql:// URL")
		}
		return kindPostgres, s.databaseURL, nil
	default:
		dir, err := defaultDataDir(s.getenv)
		if err != nil {
			return 0, "", err
		}
		return kindSQLite, dir, nil
	}
}

// openStore opens the chosen store, migrating its schema, and returns it
// with the line serve prints about it ("data: <dir>", "data: in memory
// ..." or "database: <url without password>"). serving says the store is
// serve's: on SQLite it then keeps its run cache and holds the data
// directory's lock (sqlite.Options.RunCacheBytes), which a second serve
// on the same directory is refused by; other commands (keys) write no
// runs and open the directory beside a running serve.
func openStore(ctx context.Context, kind storeKind, where string, log *slog.Logger, serving bool) (store.Store, string, error) {
	switch kind {
	case kindMemory:
		return memory.New(), "data: in memory (lost when the process ends)", nil
	case kindPostgres:
		st, err := postgres.Open(ctx, where, func(o *postgres.Options) { o.Logger = log })
		if err != nil {
			return nil, "", fmt.Errorf("--database-url %s: %w", redactURL(where), scrub(err, where))
		}
		return st, "database: " + redactURL(where), nil
	default:
		st, err := sqlite.OpenDir(ctx, where, func(o *sqlite.Options) {
			o.Logger = log
			if !serving {
				o.RunCacheBytes = -1 // no cache, no lock
			}
		})
		if err != nil {
			return nil, "", fmt.Errorf("--data %s: %w", where, err)
		}
		return st, "data: " + where, nil
	}
}

// redactURL returns u with its password replaced by xxxxx.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// scrub removes a URL's password from an error's text, should a driver
// quote the URL.
func scrub(err error, u string) error {
	p, perr := url.Parse(u)
	if perr != nil || p.User == nil {
		return err
	}
	pw, ok := p.User.Password()
	if !ok || pw == "" || !strings.Contains(err.Error(), pw) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
}
