package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/assistants-go/assistants/server/store"
)

// API keys of projects.
//
// A key is "sk-ast-" followed by 43 characters of base64url (32 random
// bytes). The store keeps only its hash, an HMAC-SHA256 of the key under
// the operator's key secret (Options.KeySecret; serve reads it from the
// environment variable ASSISTANTS_KEY_SECRET), plus a hint of a few
// characters for lists. Why an HMAC and not a slow KDF (bcrypt, scrypt,
// argon2): the keys are 256-bit random strings, not passwords, so there is
// nothing for a slow hash to protect against guessing; an HMAC is found
// again in one indexed lookup per request (a salted KDF could not be
// looked up by hash), and the secret, which is not in the database, means
// that a stolen copy of the database is not even enough to check a
// guessed key. Changing the secret makes every key invalid.
//
// `assistants keys create --project NAME` makes a key (and the project)
// and prints it once; `keys list` shows ids, projects, hints and dates;
// `keys revoke ID` revokes one. They work on the store directly, with no
// HTTP admin surface.
//
// Revocation: a replica remembers a key it looked up for
// Options.KeyCacheTTL (default 30 s, also for a value ≤ 0), so a revoked key stops working on
// every replica within KeyCacheTTL of the revoke. Unknown keys are
// remembered as unknown for as long (a flood of wrong keys reaches the
// store once per distinct key and TTL); a key created a moment ago still
// works at once, since no one can have tried it before. A revoked key
// found in the store is refused at once. The cache holds at most 10 000
// of the store's keys and 10 000 unknown ones; each set starts again
// empty when full.

// KeyPrefix starts every API key the server makes.
const KeyPrefix = "sk-ast-"

// DefaultKeyCacheTTL is Options.KeyCacheTTL's default.
const DefaultKeyCacheTTL = 30 * time.Second

// MinKeySecretBytes is the shortest Options.KeySecret accepted.
const MinKeySecretBytes = 32

// ErrKeySecretTooShort is returned for a key secret shorter than
// MinKeySecretBytes.
var ErrKeySecretTooShort = fmt.Errorf("the key secret must be at least %d bytes", MinKeySecretBytes)

// NewAPIKey makes a key of project: it returns the key (to show once) and
// the value to store (store.Store.CreateAPIKey), whose Hash is the key's
// HMAC under secret. The caller creates the project first.
func NewAPIKey(secret []byte, project string, now time.Time) (key string, rec store.APIKey, err error) {
	if len(secret) < MinKeySecretBytes {
		return "", store.APIKey{}, ErrKeySecretTooShort
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", store.APIKey{}, fmt.Errorf("new API key: %w", err)
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	rec = store.APIKey{
		ID:        newID("key_"),
		Project:   store.ProjectOr(project),
		Hash:      HashAPIKey(secret, key),
		Hint:      key[:len(KeyPrefix)+2] + "…" + key[len(key)-4:],
		CreatedAt: now.Unix(),
	}
	return key, rec, nil
}

// HashAPIKey returns the hash under which the store keeps key: its
// HMAC-SHA256 under secret.
func HashAPIKey(secret []byte, key string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(key))
	return m.Sum(nil)
}

// WithKeySecret turns on the keys kept in the store (made with `assistants
// keys create`), hashed under secret (at least MinKeySecretBytes bytes;
// a shorter secret is refused: New logs ErrKeySecretTooShort and every
// store key gets 401, auth staying on). Default: none (only
// Options.APIKeys, if any).
func WithKeySecret(secret []byte) Option {
	return func(o *Options) { o.KeySecret = secret }
}

// WithKeyCacheTTL sets how long a replica trusts a key it looked up, and
// so how long a revoked key may still work (default, and for d ≤ 0,
// DefaultKeyCacheTTL).
func WithKeyCacheTTL(d time.Duration) Option { return func(o *Options) { o.KeyCacheTTL = d } }

// principal is who a request acts as: a key and its project.
type principal struct {
	// keyID names the key for limits ("key_..." for a store key,
	// "static:N" for the Nth of Options.APIKeys, "" with auth off).
	keyID   string
	project string
}

type principalCtxKey struct{}

func withPrincipal(ctx context.Context, p principal) context.Context {
	return withProject(context.WithValue(ctx, principalCtxKey{}, p), p.project)
}

func principalOf(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalCtxKey{}).(principal)
	return p, ok
}

// keyCache remembers the keys a replica looked up in the store, each for
// ttl. The keys the store has (revoked or not) and the unknown ones are
// kept apart, at most keyCacheMax of each; when one set is full it starts
// again empty (its keys are looked up again). So a flood of wrong keys
// never evicts the store's keys.
type keyCache struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	db     store.Store

	mu      sync.Mutex
	m       map[[32]byte]keyEntry // keys the store has
	unknown map[[32]byte]keyEntry // keys it does not have
}

type keyEntry struct {
	p       principal
	revoked bool
	until   time.Time
}

const keyCacheMax = 10000

// errKeyUnknown: no key of the store has this hash, or it was revoked.
var errKeyUnknown = errors.New("unknown or revoked API key")

func newKeyCache(db store.Store, secret []byte, ttl time.Duration, now func() time.Time) *keyCache {
	if ttl <= 0 {
		ttl = DefaultKeyCacheTTL
	}
	return &keyCache{secret: secret, ttl: ttl, now: now, db: db, m: map[[32]byte]keyEntry{}, unknown: map[[32]byte]keyEntry{}}
}

// resolve returns the principal of key: errKeyUnknown for a key the store
// does not have or has revoked, another error when the store failed.
func (c *keyCache) resolve(ctx context.Context, key string) (principal, error) {
	if len(c.secret) < MinKeySecretBytes {
		return principal{}, errKeyUnknown // refused secret (New logged it): fail closed
	}
	h := HashAPIKey(c.secret, key)
	var hk [32]byte
	copy(hk[:], h)
	now := c.now()
	c.mu.Lock()
	e, ok := c.m[hk]
	if !ok {
		e, ok = c.unknown[hk]
	}
	c.mu.Unlock()
	if ok && now.Before(e.until) {
		if e.revoked {
			return principal{}, errKeyUnknown
		}
		return e.p, nil
	}
	k, err := c.db.GetAPIKeyByHash(ctx, h)
	set := c.m
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Remembered too, so that a flood of wrong keys does not reach
		// the store once per request. Safe: a key is 256 random bits, so
		// no one can have tried a key before it was made.
		e = keyEntry{revoked: true, until: now.Add(c.ttl)}
		set = c.unknown
	case err != nil:
		return principal{}, fmt.Errorf("look up API key: %w", err)
	default:
		e = keyEntry{p: principal{keyID: k.ID, project: k.Project}, revoked: k.RevokedAt != 0, until: now.Add(c.ttl)}
	}
	c.mu.Lock()
	if len(set) >= keyCacheMax {
		clear(set)
	}
	set[hk] = e
	c.mu.Unlock()
	if e.revoked {
		return principal{}, errKeyUnknown
	}
	return e.p, nil
}
