package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/assistants-go/assistants/gen"
	"github.com/assistants-go/assistants/server/store"
)

// Idempotency records in the store: the replicas of one database, and this
// process after a restart, share them. Each process keeps its recent keys
// in memory too (idemStore: it lets the requests of one key that meet in
// one process wait on each other without asking the store); a key unknown
// there is claimed in the store, and a key the store already knows is
// answered from its record:
//
//   - done: the remembered reply is replayed (Idempotent-Replayed: true);
//   - stream: the repeat is reattached to the run's events (see reattach);
//   - pending: the first request is being served by another process: the
//     repeat polls the record until it is answered, until the request's
//     work shows done in the store (createRun, createThreadAndRun: the run
//     exists; submitToolOutputs: its outputs are applied; createThread,
//     createMessage, createAssistant, createVectorStore,
//     createVectorStoreFileBatch, createFile: the object exists; see
//     runIntent), when
//     the repeat is answered with the run or object, or until the claim's
//     lease ends, when the claimant is taken for dead and the repeat does
//     the work.
//
// A claim's lease is short (IdempotencyLease, 10 s) and its claimant
// renews it while the request is in flight: a heartbeat goroutine extends
// it every idemRenewEvery (a third of the lease) with
// store.Store.RenewIdempotencyKey, and stops, and is waited for, as soon as
// the request has its answer (before the answer is recorded), or when the
// server closes. So a claimant that is alive and slow keeps its key for as
// long as it works, and its repeats keep waiting for its answer (the work
// is never done twice), while the claim of a claimant that died (killed,
// its machine lost, cut off from the store) lapses within one lease of its
// last renewal and a repeat then does the work. A renewal, and the write
// that records the answer (or drops the claim of a request that leaves
// none), are compare-and-sets on the lease the claimant last wrote: a
// claimant that lost its lease (no renewal reached the store for a whole
// lease, and another request claimed the key) cannot take the key back
// from the request that claimed it next, nor overwrite or drop that
// request's claim or answer. It logs the loss and stops renewing; its
// reply still goes to its own client (it did the work), but the store
// keeps the other request's answer, which every later repeat gets (see
// serveFirst).
//
// Leases are compared with each replica's clock (Options.Now): replicas'
// clocks must agree to well within the lease (NTP does), or a replica
// whose clock runs ahead takes live claims for dead.
//
// Records expire Options.IdempotencyTTL after their answer; every process
// deletes the expired ones every idemSweepEvery, and the claims whose
// lease lapsed (a claimant that died) Options.IdempotencyTTL after it
// lapsed (see sweepIdempotency).

// IdempotencyLease is how long a claim on an Idempotency-Key holds the key
// in the store without a renewal: a repeat of a request whose claimant
// died waits at most this long (after the claimant's last renewal) before
// it does the work itself. Not configurable.
const IdempotencyLease = 10 * time.Second

const (
	// idemRenewEvery is how often a claimant renews its claim's lease: a
	// third of the lease, so two renewals in a row may fail (a slow or
	// unreachable store) before the lease lapses.
	idemRenewEvery = IdempotencyLease / 3
	// idemMaxUnsure bounds the renewals whose outcome is unknown that a
	// heartbeat remembers (see renewClaim).
	idemMaxUnsure = 4
	// idemPoll is how often a repeat polls a key claimed elsewhere.
	idemPoll = 50 * time.Millisecond
	// idemSweepEvery is how often expired records are deleted.
	idemSweepEvery = time.Minute
)

// idemStream is the record of a streamed reply: the run and where its
// stream began (see idemEntry).
type idemStream struct {
	RunID string         `json:"run_id"`
	From  int            `json:"from"`
	First []idemStreamEv `json:"first,omitempty"`
}

type idemStreamEv struct {
	Name string          `json:"name"`
	Data json.RawMessage `json:"data"`
}

// runIntent is what a keyed creating request will make, chosen before the
// work starts and written into the key's claim: a repeat that finds the
// claim still pending (its claimant may have died after committing its
// work and before recording the answer) answers with that object when it
// exists, instead of doing the work again (see answerIntent); so does a
// repeat of the same request that comes after the claim's lease and
// claims the key over it (ClaimIdempotencyKey returns the lapsed claim:
// see lapsedCreate).
//
// A createRun or createThreadAndRun names the run (RunID) and, for
// createThreadAndRun, the thread it starts (ThreadID). A createThread,
// createMessage, createAssistant, createVectorStore or
// createVectorStoreFileBatch names the object it makes with Object (its
// "object" field: "thread", "thread.message", "assistant", "vector_store",
// "vector_store.files_batch") and its id: ThreadID for a thread (which
// buildThread reads as createThreadAndRun's), ID for the others, with
// ThreadID the message's thread and VectorStoreID the batch's vector store
// (see createdID). Their object is written in the same transaction that
// checks the claim is still the request's (claimFence, claimedMessage), so
// a claimant whose lease lapsed while it was alive and whose key was taken
// over makes nothing: one object for the key, whichever request made it.
// A createRun's or createThreadAndRun's run (and thread) is fenced the
// same way (runClaimFence).
//
// A keyed submitToolOutputs names no new object; its claim records the run
// and the ids of the tool calls the request answers (Calls): a repeat that
// finds the claim pending answers with the run once the run shows those
// outputs applied (the submit committed; its claimant may have died before
// recording the answer), instead of waiting for the claim's lease to end
// and then failing, the run having moved on.
//
// A file upload (createFile, multipart) names its file with Object
// "file" and ID. The file becomes visible in the same write that checks
// that the claim is still the request's (store.CreateFileClaimed), so the
// file of a claimant whose claim was taken over (it died, or its lease
// lapsed while it worked) never appears. A repeat that finds the claim
// pending, or claims the key over the lapsed claim, answers with the file
// the claim names when it exists and the repeat uploads the same file
// (sameUpload: a multipart claim holds no fingerprint of its body, which
// is hashed only as it is read), and otherwise uploads it itself under an
// id of its own; its claim carries the files the lapsed claim named
// (Prev, written into the claim before anything else: inheritFiles), for
// the repeat after it, also when the repeat's answer is not remembered
// (forgetShared leaves a marker naming them; see answerUpload and
// lapsedUpload).
//
// The other keyed POSTs have no intent. Modifications (metadata, tool
// resources) and attaching a file to a vector store (the vector store
// file's id is the file's: one object, processed again) come out the same
// when done twice; a cancel done twice answers a 400 the second time but
// changes nothing.
type runIntent struct {
	RunID    string   `json:"run_id,omitempty"`
	ThreadID string   `json:"thread_id,omitempty"`
	Calls    []string `json:"submit_calls,omitempty"` // submitToolOutputs: the calls answered
	Object   string   `json:"object,omitempty"`       // a created object's kind (not a run)
	ID       string   `json:"id,omitempty"`           // a created message's, assistant's, vector store's or file batch's id
	// VectorStoreID is a created file batch's vector store.
	VectorStoreID string `json:"vector_store_id,omitempty"`
	// Prev: an upload's claim that took the key over from a lapsed claim
	// (or a repeat's probe of it, or the marker a forgotten upload left:
	// see inheritFiles and forgetShared) names the files that record
	// named, which may have been stored.
	Prev []string `json:"prev_files,omitempty"`

	// lapsed: the lapsed claim of a create this request claimed the key
	// over (lapsedCreate): put back, already expired, when this request's
	// answer is not remembered (forgetShared).
	lapsed *store.IdempotencyRecord

	// The claim as written (claimShared): its store key and body. A
	// message is not given the id its claim names at first (an id chosen
	// then would sort before objects made while the request waited, such
	// as a run's reply, though made after them): it gets its id when it is
	// stored, and the same write makes the claim name it
	// (claimedMessage), so the id first named is only the claim's token.
	claimKey  string
	claimBody []byte
}

// claimedMessage stores sm, the message of a createMessage request: for a
// request holding an Idempotency-Key claim (intent in ctx), in one write
// with the claim's body naming it (store.CreateMessageClaimed).
func (s *Server) claimedMessage(ctx context.Context, sm store.Message) error {
	in := intentFrom(ctx)
	if in == nil || in.Object != intentMessage || in.claimKey == "" {
		return s.db.CreateMessage(ctx, sm)
	}
	named := *in
	named.ID = sm.ID
	body, err := json.Marshal(named)
	if err != nil {
		return err
	}
	return s.db.CreateMessageClaimed(ctx, sm, store.Claim{Key: in.claimKey, Body: in.claimBody, Named: body})
}

// claimFence returns the Idempotency-Key claim that the create of the
// object of kind object (intentThread, intentAssistant, intentVectorStore,
// intentFileBatch) with id id is fenced on (store.Claim): the claim of the
// request of ctx, when it names that object. Otherwise (no claim, or
// another object, such as the vector store of an assistant's
// tool_resources) it returns nil: the create is not fenced.
//
// A fenced create is written only while the claim is still the
// request's: a request whose lease lapsed while it worked (it was cut off
// from the store), and whose key another request took over, makes
// nothing (store.ErrClaimLost, answered 409 idempotency_key_in_flux, see
// storeErr); the request that took the key over answers with the object
// the lapsed claim names when that was made before (lapsedCreate), or
// makes its own.
func claimFence(ctx context.Context, object, id string) *store.Claim {
	in := intentFrom(ctx)
	if in == nil || in.Object != object || in.claimKey == "" {
		return nil
	}
	named := in.ID
	if object == intentThread {
		named = in.ThreadID
	}
	if named != id {
		return nil
	}
	return &store.Claim{Key: in.claimKey, Body: in.claimBody}
}

// runClaimFence returns the Idempotency-Key claim that the create of the
// run runID is fenced on (store.NewRun.Claim): the claim of the request of
// ctx, a createRun or createThreadAndRun, when it names that run.
// Otherwise (no claim, or another request) it returns nil: the create is
// not fenced. See claimFence.
func runClaimFence(ctx context.Context, runID string) *store.Claim {
	in := intentFrom(ctx)
	if in == nil || in.Object != "" || in.Calls != nil || in.RunID != runID || in.claimKey == "" {
		return nil
	}
	return &store.Claim{Key: in.claimKey, Body: in.claimBody}
}

// The kinds of objects an intent names besides runs (runIntent.Object).
const (
	intentThread      = "thread"
	intentMessage     = "thread.message"
	intentAssistant   = "assistant"
	intentVectorStore = "vector_store"
	intentFileBatch   = "vector_store.files_batch"
	intentFile        = "file"
)

// files returns the files an upload's intent names: its own and those of
// the lapsed claims before it.
func (in *runIntent) files() []string {
	if in == nil || in.Object != intentFile {
		return nil
	}
	if in.ID == "" {
		return in.Prev
	}
	return append([]string{in.ID}, in.Prev...)
}

// namesCreated reports whether rec is a pending claim whose intent names
// an object it creates other than a file: a thread, message, assistant,
// vector store or file batch (Object), or the run of a createRun or
// createThreadAndRun (RunID; a submitToolOutputs names a run it does not
// create). See runIntent.
func namesCreated(rec store.IdempotencyRecord) bool {
	in := recordIntent(rec)
	return in != nil && in.Object != intentFile && (in.Object != "" || in.RunID != "" && in.Calls == nil)
}

// recordIntent returns the intent a store record names, or nil.
func recordIntent(rec store.IdempotencyRecord) *runIntent {
	if rec.State != store.IdemPending || len(rec.Body) == 0 {
		return nil
	}
	var in runIntent
	if json.Unmarshal(rec.Body, &in) != nil {
		return nil
	}
	return &in
}

type runIntentKey struct{}

// intentFor returns the intent of a createRun (POST
// /v1/threads/{thread_id}/runs) or createThreadAndRun (POST
// /v1/threads/runs) request, of a createThread (POST /v1/threads),
// createMessage (POST /v1/threads/{thread_id}/messages), createAssistant
// (POST /v1/assistants), createVectorStore (POST /v1/vector_stores) or
// createVectorStoreFileBatch (POST
// /v1/vector_stores/{vector_store_id}/file_batches), or
// of a submitToolOutputs (POST
// /v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs) whose body
// (already read: body) names its calls, or nil.
func intentFor(r *http.Request, body []byte) *runIntent {
	switch r.URL.Path {
	case "/v1/threads":
		return &runIntent{Object: intentThread, ThreadID: newID(prefixThread)}
	case "/v1/assistants":
		return &runIntent{Object: intentAssistant, ID: newID(prefixAssistant)}
	case "/v1/vector_stores":
		return &runIntent{Object: intentVectorStore, ID: newID(prefixVectorStore)}
	case "/v1/files":
		return &runIntent{Object: intentFile, ID: newID(prefixFile)}
	}
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v1/vector_stores/"); ok {
		if vs, ok := strings.CutSuffix(rest, "/file_batches"); ok && validID(vs) {
			return &runIntent{Object: intentFileBatch, VectorStoreID: vs, ID: newID(prefixFileBatch)}
		}
		return nil
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/threads/")
	if !ok {
		return nil
	}
	if rest == "runs" {
		return &runIntent{RunID: newID(prefixRun), ThreadID: newID(prefixThread)}
	}
	if th, ok := strings.CutSuffix(rest, "/runs"); ok && validID(th) {
		return &runIntent{RunID: newID(prefixRun), ThreadID: th}
	}
	if th, ok := strings.CutSuffix(rest, "/messages"); ok && validID(th) {
		return &runIntent{Object: intentMessage, ThreadID: th, ID: newID(prefixMessage)}
	}
	if path, ok := strings.CutSuffix(rest, "/submit_tool_outputs"); ok {
		th, run, ok := strings.Cut(path, "/runs/")
		if !ok || !validID(th) || !validID(run) {
			return nil
		}
		var req struct {
			ToolOutputs []struct {
				ToolCallID string `json:"tool_call_id"`
			} `json:"tool_outputs"`
		}
		if json.Unmarshal(body, &req) != nil || len(req.ToolOutputs) == 0 {
			return nil // not a valid submit: validation answers it
		}
		in := &runIntent{RunID: run, ThreadID: th}
		for _, o := range req.ToolOutputs {
			if o.ToolCallID == "" {
				return nil
			}
			in.Calls = append(in.Calls, o.ToolCallID)
		}
		return in
	}
	return nil
}

// intentFrom returns the intent of a creating request's context, or nil.
func intentFrom(ctx context.Context) *runIntent {
	in, _ := ctx.Value(runIntentKey{}).(*runIntent)
	return in
}

// createdID returns the id of the object of kind object (intentMessage,
// intentAssistant, intentVectorStore, intentFileBatch, intentFile) that the request of ctx creates: the
// one its Idempotency-Key claim names (see runIntent), or else a new id
// with prefix. Only the handler of the request's own object may call it
// (not code that makes objects of that kind for another request, such as
// the vector store of an assistant's tool_resources).
func createdID(ctx context.Context, object, prefix string) string {
	if in := intentFrom(ctx); in != nil && in.Object == object && in.ID != "" {
		return in.ID
	}
	return newID(prefix)
}

// sharedKey is the store key of a local key (idemScope + key).
func sharedKey(mapKey string) string {
	n := min(8, len(mapKey))
	return hex.EncodeToString([]byte(mapKey[:n])) + ":" + mapKey[n:]
}

// claimShared claims a key in the store: when the claim is taken, it
// returns the function that ends the claim's heartbeat (see holdClaim),
// which the caller must call once the request has its answer and before
// recording it; when another request holds the key, it returns that
// request's record and a nil function.
//
// reqID is the request's id (X-Request-Id), for the heartbeat's warnings.
func (s *Server) claimShared(ctx context.Context, mapKey, reqID string, fp [32]byte, lazy bool, intent *runIntent) (store.IdempotencyRecord, func() claimLease, error) {
	now := s.opts.Now()
	rec := store.IdempotencyRecord{Key: sharedKey(mapKey), Project: projectOf(ctx), State: store.IdemPending,
		ExpiresAt: now.Add(IdempotencyLease)}
	if !lazy {
		rec.Fingerprint = fp[:]
	}
	if intent != nil {
		b, err := json.Marshal(intent)
		if err != nil {
			return store.IdempotencyRecord{}, nil, err
		}
		rec.Body = b
	}
	old, claimed, err := s.db.ClaimIdempotencyKey(ctx, rec, now)
	if err != nil || !claimed {
		return old, nil, err
	}
	if intent != nil {
		intent.claimKey, intent.claimBody = rec.Key, rec.Body
		s.inheritFiles(ctx, reqID, rec, intent, old)
	}
	return old, s.holdClaim(rec.Key, reqID, rec.ExpiresAt), nil
}

// inheritFiles makes the claim of an upload (rec, just written, with its
// intent), which replaced the record old, name the files old names too
// (intent.Prev): the lapsed claim of an upload whose claimant died, or the
// marker of one whose answer was not remembered (see forgetShared), whose
// file may exist. It rewrites the claim before anything else (before its
// heartbeat starts: a compare-and-set on the lease just written, which
// nothing else changes meanwhile), so however this request ends (a 400 or
// a 409 not remembered, a crash), the request after it still looks for
// those files and never stores a second one.
func (s *Server) inheritFiles(ctx context.Context, reqID string, rec store.IdempotencyRecord, intent *runIntent, old store.IdempotencyRecord) {
	if intent.Object != intentFile {
		return
	}
	added := false
	for _, id := range recordIntent(old).files() {
		if id != intent.ID && !slices.Contains(intent.Prev, id) {
			intent.Prev = append(intent.Prev, id)
			added = true
		}
	}
	if !added {
		return
	}
	body, err := json.Marshal(intent)
	if err != nil {
		return
	}
	named := rec
	named.Body = body
	ok, err := s.db.CompleteIdempotencyKey(context.WithoutCancel(ctx), named, rec.ExpiresAt)
	switch {
	case err != nil:
		// Perhaps written: the claim's body is unknown, and the upload's
		// own write (a compare-and-set on it) may fail and be retried.
		s.log.Warn("idempotency: the claim was not made to name the files of the claim it replaced", append(idemLogAttrs(rec.Key, reqID), "err", err.Error())...)
	case ok:
		intent.claimBody = body
	}
}

// idemLogAttrs are the attributes that name a claim in a warning: the id
// of the request that holds it and a short hash of its store key (which
// is the same on every replica, and tells neither the API key nor the
// Idempotency-Key).
func idemLogAttrs(storeKey, reqID string) []any {
	sum := sha256.Sum256([]byte(storeKey))
	return []any{"request_id", reqID, "idem_key_hash", hex.EncodeToString(sum[:6])}
}

// claimLease is what a claim's heartbeat knows of the claim's lease once
// it has stopped (see holdClaim): the lease it last wrote, the leases it
// may have written (renewals whose outcome is unknown), and whether it
// learnt that the claim is no longer its own.
type claimLease struct {
	held   time.Time   // the lease the claimant wrote or last renewed
	unsure []time.Time // leases written perhaps, the newest last
	// lost: a renewal found the claim gone, answered or claimed by
	// another request (no renewal reached the store for a whole lease).
	lost bool
}

// onClaim applies fn, a compare-and-set on the claim's lease, to the
// leases the claim may hold, the newest first, until one is applied; it
// reports whether one was. When the lease was lost it does nothing.
func (l claimLease) onClaim(fn func(held time.Time) (bool, error)) (bool, error) {
	if l.lost {
		return false, nil
	}
	for i := len(l.unsure) - 1; i >= 0; i-- {
		if ok, err := fn(l.unsure[i]); ok || err != nil {
			return ok, err
		}
	}
	return fn(l.held)
}

// holdClaim starts the heartbeat of the claim of key (a store key), whose
// lease runs until held: it renews the lease every idemRenewEvery until
// the returned function is called or the server closes (Close waits for
// it, as for the server's other background goroutines). The function
// stops the heartbeat, waits until it has stopped (so no renewal lands
// after it returns) and returns what it knows of the lease, for the
// compare-and-set that records the answer or drops the claim; it may be
// called more than once.
func (s *Server) holdClaim(key, reqID string, held time.Time) func() claimLease {
	lease := claimLease{held: held}
	if s.ctx.Err() != nil { // closed: no heartbeat to start (nor to wait for)
		return func() claimLease { return lease }
	}
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan struct{})
	s.goBackground(func(context.Context) { // Close waits for it too
		defer close(done)
		lease = s.renewClaim(ctx, key, reqID, held)
	})
	return sync.OnceValue(func() claimLease {
		cancel()
		<-done
		return lease
	})
}

// renewClaim renews the lease of the claim of key, held until held, every
// idemRenewEvery until ctx ends or the lease is lost, and returns what it
// knows of the lease then. A renewal whose outcome is unknown (the store
// failed, perhaps after writing it, or did not answer within
// idemRenewEvery) is remembered, so the next one also matches the lease it
// may have written.
func (s *Server) renewClaim(ctx context.Context, key, reqID string, held time.Time) claimLease {
	t := time.NewTicker(idemRenewEvery)
	defer t.Stop()
	var unsure []time.Time // leases written perhaps, the newest last
	for {
		select {
		case <-ctx.Done():
			return claimLease{held: held, unsure: unsure}
		case <-t.C:
		}
		until := s.opts.Now().Add(IdempotencyLease)
		// One renewal (with its retries of unsure leases) has until the
		// next tick: a store call that hangs must not hold the heartbeat
		// past it, and its outcome is unknown (it may have landed).
		actx, cancel := context.WithTimeout(ctx, idemRenewEvery)
		ok, err := s.db.RenewIdempotencyKey(actx, key, held, until)
		for i := len(unsure) - 1; i >= 0 && err == nil && !ok; i-- {
			ok, err = s.db.RenewIdempotencyKey(actx, key, unsure[i], until)
		}
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
			// Stopped during the renewal, which may have landed.
			return claimLease{held: held, unsure: append(unsure, until)}
		case err != nil:
			s.log.Warn("idempotency: a claim's lease was not renewed; retrying", append(idemLogAttrs(key, reqID), "err", err.Error())...)
			if len(unsure) == idemMaxUnsure {
				unsure = unsure[1:]
			}
			unsure = append(unsure, until)
		case !ok:
			s.log.Warn("idempotency: a claim's lease was lost while its request ran (no renewal reached the store in time); a repeat may do the work again",
				idemLogAttrs(key, reqID)...)
			return claimLease{held: held, lost: true}
		default:
			held, unsure = until, unsure[:0]
		}
	}
}

// completeShared records the answer of a claimed key, whose lease is
// lease, when the claim is still its own. It reports false when it is not
// (see claimLease.lost): the answer is not recorded (the request that
// took the key over keeps its claim, and then its answer), nor kept in
// this process.
func (s *Server) completeShared(e *idemEntry, reqID string, lease claimLease, state string, status int, h http.Header, body []byte) bool {
	rec := store.IdempotencyRecord{Key: sharedKey(e.key), Fingerprint: slices.Clone(e.fingerprint[:]),
		State: state, Status: status, Body: body, ExpiresAt: s.opts.Now().Add(s.opts.IdempotencyTTL)}
	if e.lazyFP && state == store.IdemStream {
		rec.Fingerprint = nil
	}
	var err error
	if state == store.IdemStream {
		st := idemStream{RunID: e.runID, From: e.from}
		for _, ev := range e.first {
			st.First = append(st.First, idemStreamEv{Name: ev.name, Data: ev.data})
		}
		rec.Body, err = json.Marshal(st)
	} else if h != nil {
		rec.Header, err = json.Marshal(h)
	}
	ok := false
	if err == nil {
		ctx := context.WithoutCancel(s.ctx)
		ok, err = lease.onClaim(func(held time.Time) (bool, error) {
			return s.db.CompleteIdempotencyKey(ctx, rec, held)
		})
	}
	switch {
	case err != nil:
		s.log.Warn("idempotency: the answer was not recorded in the store", append(idemLogAttrs(rec.Key, reqID), "err", err.Error())...)
		return true // perhaps recorded: this process keeps it
	case !ok:
		s.log.Warn("idempotency: the answer was not recorded: another request claimed the key after this one's lease ended",
			idemLogAttrs(rec.Key, reqID)...)
	}
	return ok
}

// forgetShared drops a claimed key whose answer is not remembered, when
// the claim (whose lease is lease) is still its own. The claim of an
// upload (intent) is replaced by a marker that names its files instead
// (its own, which may have been stored, and those of the claims it took
// the key over from: see inheritFiles), already expired: a pending record
// whose lease has ended, which any request may claim the key over at once,
// learning the files to look for (lapsedUpload), and which the sweep keeps
// as it keeps lapsed claims. The claim of a create that took the key over
// a lapsed claim (intent.lapsed) is replaced by that lapsed claim, already
// expired, for the same reason: the next repeat looks for the object it
// names (lapsedCreate) before doing the work.
func (s *Server) forgetShared(mapKey, reqID string, lease claimLease, intent *runIntent) {
	ctx := context.WithoutCancel(s.ctx)
	var marker store.IdempotencyRecord
	if files := intent.files(); files != nil {
		body, err := json.Marshal(runIntent{Object: intentFile, Prev: files})
		if err == nil {
			marker = store.IdempotencyRecord{Key: sharedKey(mapKey), State: store.IdemPending, Body: body, ExpiresAt: s.opts.Now()}
		}
	} else if intent != nil && intent.lapsed != nil {
		marker = *intent.lapsed
		marker.Key, marker.State, marker.ExpiresAt = sharedKey(mapKey), store.IdemPending, s.opts.Now()
	}
	_, err := lease.onClaim(func(held time.Time) (bool, error) {
		if marker.Key != "" {
			return s.db.CompleteIdempotencyKey(ctx, marker, held)
		}
		return s.db.DeleteIdempotencyKey(ctx, sharedKey(mapKey), held)
	})
	if err != nil {
		s.log.Warn("idempotency: the claim was not dropped from the store", append(idemLogAttrs(sharedKey(mapKey), reqID), "err", err.Error())...)
	}
}

// answerShared answers a request whose key the store knows (rec). It
// returns false when the caller must try to claim the key again (the
// claimant's lease ended).
//
// When the lapsed claim is an upload's, prev is set to what the probe that
// found it lapsed names (the files that claim named, see runIntent), for
// the caller's own claim.
func (s *Server) answerShared(w http.ResponseWriter, r *http.Request, key string, rec store.IdempotencyRecord, lazy bool, fp *[32]byte, bodyHashed *bool, prev **runIntent) bool {
	mapped := rec.Key
	for rec.State == store.IdemPending {
		if answered, _ := s.answerIntent(w, r, key, rec, lazy, fp); answered {
			return true
		}
		if !sleep(r.Context(), idemPoll) {
			return true // the client went away
		}
		now := s.opts.Now()
		probe := store.IdempotencyRecord{Key: mapped, Project: projectOf(r.Context()), State: store.IdemPending, ExpiresAt: now}
		var inherit *runIntent
		created := namesCreated(rec)
		if files := recordIntent(rec).files(); files != nil {
			// An upload's probe names the files the claim named: from the
			// moment it is written, the lapsed claimant's file can no
			// longer become visible (its write checks the claim's body),
			// and whoever claims the key next learns what to look for.
			inherit = &runIntent{Object: intentFile, Prev: files}
			probe.Body, _ = json.Marshal(inherit)
		} else if created {
			// A create's probe is a copy of the claim (its intent and
			// fingerprint): its claimant may have made the object since
			// this request looked for it (see below).
			probe.Fingerprint, probe.Body = rec.Fingerprint, rec.Body
		}
		again, claimed, err := s.db.ClaimIdempotencyKey(r.Context(), probe, now)
		if err == nil && claimed && created && !bytes.Equal(again.Body, probe.Body) && namesCreated(again) {
			// The claim changed since it was read (a message's claim
			// names the message once stored): copy it as it was replaced,
			// over this expired probe (unless a request claimed the key
			// over the probe meanwhile: then that one's claim is polled).
			probe.Fingerprint, probe.Body = again.Fingerprint, again.Body
			again, claimed, err = s.db.ClaimIdempotencyKey(r.Context(), probe, now)
		}
		switch {
		case err != nil:
			writeAPIError(w, errIdemRetry())
			return true
		case claimed && inherit != nil:
			// The lease ended: the probe stays (it is expired already: any
			// request may claim the key over it at once, and learns the
			// files it names); this request claims the key and looks for
			// them (lapsedUpload), or uploads.
			*prev = inherit
			return false
		case claimed && created:
			// The lease ended: the probe, a copy of the lapsed claim,
			// stays (expired: any request may claim the key over it at
			// once). Its claimant can still make the object until this
			// request claims the key over the probe (its write checks that
			// the claim's body is still its own, claimFence), but no
			// longer after: this request then answers with the object the
			// claim names when it exists (lapsedCreate), or makes its own.
			// Dropping the probe would lose the object its claimant made
			// after this request last looked for it.
			return false
		case claimed:
			// The lease ended: drop this probe claim (only it: a request
			// may claim the key at once) and do the work.
			_, _ = s.db.DeleteIdempotencyKey(r.Context(), mapped, now)
			return false
		}
		rec = again
	}
	if lazy && !*bodyHashed {
		h := requestHash(r)
		if _, err := io.Copy(h, r.Body); err != nil {
			writeAPIError(w, bodyReadError(err))
			return true
		}
		h.Sum(fp[:0])
		*bodyHashed = true
	}
	if len(rec.Fingerprint) > 0 && string(rec.Fingerprint) != string(fp[:]) {
		writeAPIError(w, errKeyReused(key))
		return true
	}
	if rec.State == store.IdemStream {
		var st idemStream
		if err := json.Unmarshal(rec.Body, &st); err != nil {
			st = idemStream{}
		}
		e := &idemEntry{stream: true, runID: st.RunID, from: st.From}
		for _, ev := range st.First {
			e.first = append(e.first, sseEvent{name: ev.Name, data: ev.Data})
		}
		s.reattach(w, r, e)
		return true
	}
	var h http.Header
	if len(rec.Header) > 0 {
		_ = json.Unmarshal(rec.Header, &h)
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(rec.Status)
	_, _ = w.Write(rec.Body)
	return true
}

// answerIntent answers a repeat whose key's claim is pending (or lapsed:
// lapsedCreate) with the run or other object the claim's request made,
// when that exists (see runIntent). When it does not answer, unreadable
// is the error of a read that failed for another reason than the object
// not existing (or of an intent this version does not know): the object
// may exist.
func (s *Server) answerIntent(w http.ResponseWriter, r *http.Request, key string, rec store.IdempotencyRecord, lazy bool, fp *[32]byte) (answered bool, unreadable error) {
	if len(rec.Body) == 0 {
		return false, nil
	}
	var in runIntent
	if json.Unmarshal(rec.Body, &in) != nil {
		return false, nil
	}
	if in.Object == intentFile {
		return lazy && s.answerUpload(w, r, key, rec, &in), nil
	}
	if lazy {
		return false, nil
	}
	if in.Object != "" {
		return s.answerCreated(w, r, key, rec, fp, in)
	}
	if in.RunID == "" {
		return false, nil
	}
	round := -1 // submitToolOutputs: the round the outputs answered
	var run gen.RunObject
	if in.Calls != nil {
		var ok bool
		if run, round, ok = s.eng.submitted(r.Context(), in.ThreadID, in.RunID, in.Calls); !ok {
			return false, nil // not applied (yet): wait for the claim
		}
	} else {
		var err error
		if run, err = s.eng.getRun(r.Context(), in.ThreadID, in.RunID); err != nil {
			return false, unlessNotFound(err) // not made (yet): wait for the claim
		}
	}
	if len(rec.Fingerprint) > 0 && string(rec.Fingerprint) != string(fp[:]) {
		writeAPIError(w, errKeyReused(key))
		return true, nil
	}
	var req struct {
		Stream bool `json:"stream"`
	}
	if body, err := io.ReadAll(r.Body); err == nil {
		_ = json.Unmarshal(body, &req)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	if req.Stream {
		from := 0 // a created run's stream: from its first event
		if round >= 0 {
			from = s.eng.submitFrom(r.Context(), run.Id, round)
		}
		var first []sseEvent
		if in.Calls == nil && strings.HasSuffix(r.URL.Path, "/threads/runs") {
			// createThreadAndRun's stream opens with its thread.
			th, err := s.getThreadObject(r.Context(), in.ThreadID)
			if err != nil {
				return false, unlessNotFound(err)
			}
			if data, err := json.Marshal(th); err == nil {
				first = append(first, sseEvent{name: "thread.created", data: data})
			}
		}
		s.reattach(w, r, &idemEntry{stream: true, runID: run.Id, from: from, first: first})
		return true, nil
	}
	b, err := json.Marshal(run)
	if err != nil {
		return false, err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header()["Openai-Poll-After-Ms"] = s.eng.poll
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
	return true, nil
}

// unlessNotFound returns err unless it says the object does not exist (a
// 404).
func unlessNotFound(err error) error {
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return nil
	}
	return err
}

// answerCreated answers a repeat of a createThread, createMessage,
// createAssistant, createVectorStore or createVectorStoreFileBatch whose key's claim is still pending
// (in: the claim's intent) with the object the claim names, as its handler
// would have (200, the object as it is now), when that object exists.
func (s *Server) answerCreated(w http.ResponseWriter, r *http.Request, key string, rec store.IdempotencyRecord, fp *[32]byte, in runIntent) (answered bool, unreadable error) {
	ctx := r.Context()
	var obj any
	var err error
	switch in.Object {
	case intentThread:
		obj, err = s.getThreadObject(ctx, in.ThreadID)
	case intentMessage:
		obj, err = s.lookupMessage(ctx, in.ThreadID, in.ID)
	case intentAssistant:
		obj, err = s.getAssistant(ctx, in.ID)
	case intentVectorStore:
		obj, err = s.getVectorStore(ctx, projectOf(ctx), in.ID)
	case intentFileBatch:
		var b store.FileBatch
		if b, err = s.getBatch(ctx, projectOf(ctx), in.VectorStoreID, in.ID); err == nil {
			obj, err = s.batchView(ctx, projectOf(ctx), b)
		}
	default: // a kind of a later version: wait for the claim
		return false, fmt.Errorf("idempotency: a claim names an object of kind %q", in.Object)
	}
	if err != nil {
		return false, unlessNotFound(err) // not made (yet), or not readable now: wait for the claim
	}
	if len(rec.Fingerprint) > 0 && string(rec.Fingerprint) != string(fp[:]) {
		writeAPIError(w, errKeyReused(key))
		return true, nil
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return false, err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
	return true, nil
}

// sweepIdempotency deletes expired idempotency records every
// idemSweepEvery, until ctx ends: answers once expired, and claims whose
// lease lapsed (which name what their claimant may have made: see
// lapsedCreate and lapsedUpload) Options.IdempotencyTTL after that, so a
// repeat within the TTL still finds what they name.
func (s *Server) sweepIdempotency(ctx context.Context) {
	t := time.NewTicker(idemSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.sweepIdempotencyOnce(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("idempotency: expired records were not deleted", "err", err.Error())
			}
		case <-ctx.Done():
			return
		}
	}
}

// sweepIdempotencyOnce deletes the expired idempotency records once (see
// sweepIdempotency).
func (s *Server) sweepIdempotencyOnce(ctx context.Context) error {
	now := s.opts.Now()
	_, err := s.db.DeleteExpiredIdempotencyKeys(ctx, now, now.Add(-s.opts.IdempotencyTTL))
	return err
}
