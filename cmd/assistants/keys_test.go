package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testKeySecret = "a-test-secret-for-api-keys-0123456789-abcdef"

// TestKeysCommand: keys create prints a key once, keys list shows it
// without the key, serve (on the same --data) accepts it in its project,
// and after keys revoke serve refuses it.
func TestKeysCommand(t *testing.T) {
	t.Setenv(envKeySecret, testKeySecret)
	dir := t.TempDir()
	ctx := t.Context()
	var out bytes.Buffer
	require.NoError(t, dispatch(ctx, []string{"keys", "create", "--project", "team-a", "--data", dir}, &out))
	key := regexp.MustCompile(`(?m)^key: (sk-ast-\S+)$`).FindStringSubmatch(out.String())
	require.NotNil(t, key, out.String())
	id := regexp.MustCompile(`(?m)^id: (key_\S+)$`).FindStringSubmatch(out.String())
	require.NotNil(t, id, out.String())
	require.Contains(t, out.String(), "project: team-a")

	out.Reset()
	require.NoError(t, dispatch(ctx, []string{"keys", "list", "--data", dir}, &out))
	require.Contains(t, out.String(), id[1])
	require.Contains(t, out.String(), "team-a")
	require.NotContains(t, out.String(), key[1], "keys list never shows a key")

	// serve on the same data accepts the key; it trusts a looked-up key
	// for 1ns, so the revoke below shows at once.
	sctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- serve(sctx, []string{"--data", dir, "--addr", "127.0.0.1:0", "--step-delay", "0", "--log-level", "error", "--key-cache-ttl", "1ns"}, pw)
		pw.Close()
	}()
	br := bufio.NewReader(pr)
	_, err := br.ReadString('\n') // data: ...
	require.NoError(t, err)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	base := strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	go io.Copy(io.Discard, br)
	get := func(key string) int {
		req, err := http.NewRequest("GET", base+"/assistants", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get(key[1]))
	require.Equal(t, http.StatusUnauthorized, get(key[1]+"x"))

	out.Reset()
	require.NoError(t, dispatch(ctx, []string{"keys", "revoke", id[1], "--data", dir}, &out))
	require.Contains(t, out.String(), "revoked "+id[1])
	require.Equal(t, http.StatusUnauthorized, get(key[1]))
	out.Reset()
	require.NoError(t, dispatch(ctx, []string{"keys", "list", "--data", dir}, &out))
	require.NotContains(t, out.String(), "\t-\n")
	require.Regexp(t, id[1]+`.*\d{4}-\d\d-\d\dT.*\d{4}-\d\d-\d\dT`, out.String(), "the revoke time is listed")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestKeysCreateKeySecretEnv: keys create reads the secret from the
// variable named by --key-secret-env, as serve does, and not from the
// default variable.
func TestKeysCreateKeySecretEnv(t *testing.T) {
	t.Setenv(envKeySecret, "")
	t.Setenv("TEST_OTHER_KEY_SECRET", testKeySecret)
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, dispatch(t.Context(), []string{"keys", "create", "--project", "p", "--key-secret-env", "TEST_OTHER_KEY_SECRET", "--data", dir}, &out))
	require.Regexp(t, `(?m)^key: sk-ast-\S+$`, out.String())

	t.Setenv(envKeySecret, testKeySecret)
	t.Setenv("TEST_OTHER_KEY_SECRET", "")
	err := dispatch(t.Context(), []string{"keys", "create", "--project", "p", "--key-secret-env", "TEST_OTHER_KEY_SECRET", "--data", dir}, io.Discard)
	require.ErrorContains(t, err, "$TEST_OTHER_KEY_SECRET must hold the secret")
}

// TestKeysCommandMistakes: usage mistakes and a missing secret are
// refused with a message naming the fix.
func TestKeysCommandMistakes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		secret string
		args   []string
		usage  bool
		err    string
	}{
		{name: "no subcommand", args: []string{"keys"}, usage: true, err: "no subcommand"},
		{name: "unknown subcommand", args: []string{"keys", "rotate"}, usage: true, err: `unknown subcommand "rotate"`},
		{name: "create without project", secret: testKeySecret, args: []string{"keys", "create", "--data", dir}, usage: true, err: "--project NAME is required"},
		{name: "bad project name", secret: testKeySecret, args: []string{"keys", "create", "--project", "a b", "--data", dir}, usage: true, err: "use 1 to 64 letters"},
		{name: "create without secret", args: []string{"keys", "create", "--project", "p", "--data", dir}, err: "$" + envKeySecret + " must hold the secret"},
		{name: "short secret", secret: "short", args: []string{"keys", "create", "--project", "p", "--data", dir}, err: "at least 32 bytes"},
		{name: "memory", args: []string{"keys", "list", "--memory"}, usage: true, err: "--memory keeps nothing"},
		{name: "revoke without id", args: []string{"keys", "revoke", "--data", dir}, usage: true, err: "give the key's id"},
		{name: "revoke unknown id", args: []string{"keys", "revoke", "key_nope", "--data", dir}, err: `no key "key_nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envKeySecret, tt.secret)
			err := dispatch(t.Context(), tt.args, io.Discard)
			require.ErrorContains(t, err, tt.err)
			var ue *usageError
			require.Equal(t, tt.usage, errors.As(err, &ue), "usage error: %v", err)
		})
	}
}

// TestServeRefusesOpenAddressWithoutKey: with no key configured, serve
// listens only on loopback unless --insecure-no-auth is given.
func TestServeRefusesOpenAddressWithoutKey(t *testing.T) {
	t.Setenv("SERVE_TEST_KEY", "sk-serve-test-key")
	tests := []struct {
		name   string
		secret string
		args   []string
		ok     bool
	}{
		{name: "loopback IPv4", args: []string{"--addr", "127.0.0.1:0"}, ok: true},
		{name: "loopback IPv6", args: []string{"--addr", "[::1]:0"}, ok: true},
		{name: "localhost", args: []string{"--addr", "localhost:0"}, ok: true},
		{name: "every address", args: []string{"--addr", ":8080"}},
		{name: "0.0.0.0", args: []string{"--addr", "0.0.0.0:8080"}},
		{name: "a public address", args: []string{"--addr", "192.0.2.10:8080"}},
		{name: "insecure on purpose", args: []string{"--addr", "0.0.0.0:8080", "--insecure-no-auth"}, ok: true},
		{name: "with --api-key-env", args: []string{"--addr", "0.0.0.0:8080", "--api-key-env", "SERVE_TEST_KEY"}, ok: true},
		{name: "with store keys", secret: testKeySecret, args: []string{"--addr", "0.0.0.0:8080"}, ok: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envKeySecret, tt.secret)
			_, _, err := serveFlags(append([]string{"--memory"}, tt.args...), io.Discard)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "is not a loopback address and no API key is configured")
			require.ErrorContains(t, err, "--insecure-no-auth")
			var ue *usageError
			require.True(t, errors.As(err, &ue))
		})
	}
}
