package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/assistants-go/assistants/server"
	"github.com/assistants-go/assistants/server/store"
)

// envKeySecret names the environment variable holding the secret under
// which API keys are hashed (serve and keys create read it).
const envKeySecret = "ASSISTANTS_KEY_SECRET"

const keysUsage = `usage:
  assistants keys create --project NAME [store flags]   make a key of project NAME (made if new); prints it once
  assistants keys list [store flags]                    list the keys: id, project, hint, created, revoked
  assistants keys revoke ID [store flags]               revoke a key; every replica refuses it within --key-cache-ttl of serve (default 30s)
store flags: --data DIR | --database-url URL (as serve's; env ASSISTANTS_DATABASE_URL)
keys create needs the secret of serve in $` + envKeySecret + ` (at least 32 bytes), or in the variable
named by --key-secret-env NAME (as serve's flag)`

// keysCmd runs `assistants keys create|list|revoke` on the store chosen by
// --data / --database-url, with no server running.
func keysCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return usagef("keys: no subcommand\n%s", keysUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(out, keysUsage)
		return nil
	case "create", "list", "revoke":
	default:
		return usagef("keys: unknown subcommand %q\n%s", sub, keysUsage)
	}
	var id string
	if sub == "revoke" {
		// keys revoke ID [flags]: the id comes first.
		if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
			id, rest = rest[0], rest[1:]
		}
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	project := fs.String("project", "", "the project of the new key (keys create)")
	keySecretEnv := fs.String("key-secret-env", envKeySecret, "the environment variable holding serve's key secret (keys create; give serve's --key-secret-env)")
	sf := addStoreFlags(fs, os.Getenv)
	if err := parseFlags(fs, rest, out); err != nil {
		return err
	}
	explicitURL := false
	fs.Visit(func(f *flag.Flag) { explicitURL = explicitURL || f.Name == "database-url" })
	kind, where, err := sf.choice(explicitURL)
	if err != nil {
		return err
	}
	if kind == kindMemory {
		return usagef("keys: --memory keeps nothing: give --data or --database-url")
	}
	var secret []byte
	switch sub {
	case "create":
		if *project == "" {
			return usagef("keys create: --project NAME is required")
		}
		if !validProject(*project) {
			return usagef("keys create: --project %q: use 1 to 64 letters, digits, '-', '_' or '.'", *project)
		}
		secret = []byte(os.Getenv(*keySecretEnv))
		if len(secret) < server.MinKeySecretBytes {
			return fmt.Errorf("keys create: $%s must hold the secret of serve, at least %d bytes (e.g. openssl rand -base64 48)", *keySecretEnv, server.MinKeySecretBytes)
		}
	case "revoke":
		if id == "" {
			return usagef("keys revoke: give the key's id (see keys list)")
		}
	}
	st, _, err := openStore(ctx, kind, where, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return err
	}
	defer st.Close()
	switch sub {
	case "create":
		return keysCreate(ctx, st, secret, *project, out)
	case "list":
		return keysList(ctx, st, out)
	default:
		return keysRevoke(ctx, st, id, out)
	}
}

func validProject(p string) bool {
	if len(p) == 0 || len(p) > 64 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func keysCreate(ctx context.Context, st store.Store, secret []byte, project string, out io.Writer) error {
	now := time.Now()
	if err := st.CreateProject(ctx, store.Project{ID: project, CreatedAt: now.Unix()}); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("keys create: project %s: %w", project, err)
	}
	key, rec, err := server.NewAPIKey(secret, project, now)
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	if err := st.CreateAPIKey(ctx, rec); err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	fmt.Fprintf(out, "id: %s\nproject: %s\nkey: %s\n", rec.ID, rec.Project, key)
	fmt.Fprintln(out, "The key is shown this once: the store keeps only its hash.")
	return nil
}

func keysList(ctx context.Context, st store.Store, out io.Writer) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROJECT\tKEY\tCREATED\tREVOKED")
	lp := store.ListParams{Limit: 100}
	for {
		pg, err := st.ListAPIKeys(ctx, lp)
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		for _, k := range pg.Items {
			revoked := "-"
			if k.RevokedAt != 0 {
				revoked = time.Unix(k.RevokedAt, 0).UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Project, k.Hint, time.Unix(k.CreatedAt, 0).UTC().Format(time.RFC3339), revoked)
		}
		if !pg.HasMore || len(pg.Items) == 0 {
			return tw.Flush()
		}
		lp.After = pg.Items[len(pg.Items)-1].ID
	}
}

func keysRevoke(ctx context.Context, st store.Store, id string, out io.Writer) error {
	k, err := st.RevokeAPIKey(ctx, id, time.Now().Unix())
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("keys revoke: no key %q (see keys list)", id)
	}
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	fmt.Fprintf(out, "revoked %s (project %s) at %s; replicas refuse it within their --key-cache-ttl\n",
		k.ID, k.Project, time.Unix(k.RevokedAt, 0).UTC().Format(time.RFC3339))
	return nil
}
