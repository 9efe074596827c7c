package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
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
//     exists; submitToolOutputs: its outputs are applied; see runIntent),
//     when the repeat is answered with the run, or until the claim's lease
//     (idemLease) ends, when the claimant is taken for dead and the repeat
//     does the work.
//
// Records expire Options.IdempotencyTTL after their answer; every process
// deletes the expired ones every idemSweepEvery.

const (
	// idemLease is how long a claim holds a key before it is answered.
	idemLease = 2 * time.Minute
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

// runIntent is the run (and, for createThreadAndRun, the thread) that a
// keyed run-creating request will make, chosen before the work starts and
// written into the key's claim: a repeat that finds the claim still pending
// (its claimant may have died after committing the run and before
// recording the answer) answers with that run when it exists, instead of
// doing the work again.
//
// A keyed submitToolOutputs names no new object; its claim records the run
// and the ids of the tool calls the request answers (Calls): a repeat that
// finds the claim pending answers with the run once the run shows those
// outputs applied (the submit committed; its claimant may have died before
// recording the answer), instead of waiting for the claim's lease to end
// and then failing, the run having moved on.
type runIntent struct {
	RunID    string   `json:"run_id"`
	ThreadID string   `json:"thread_id"`
	Calls    []string `json:"submit_calls,omitempty"` // submitToolOutputs: the calls answered
}

type runIntentKey struct{}

// intentFor returns the intent of a createRun (POST
// /v1/threads/{thread_id}/runs) or createThreadAndRun (POST
// /v1/threads/runs) request, or of a submitToolOutputs (POST
// /v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs) whose body
// (already read: body) names its calls, or nil.
func intentFor(r *http.Request, body []byte) *runIntent {
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

// intentFrom returns the intent of a run-creating request's context, or
// nil.
func intentFrom(ctx context.Context) *runIntent {
	in, _ := ctx.Value(runIntentKey{}).(*runIntent)
	return in
}

// sharedKey is the store key of a local key (idemScope + key).
func sharedKey(mapKey string) string {
	n := min(8, len(mapKey))
	return hex.EncodeToString([]byte(mapKey[:n])) + ":" + mapKey[n:]
}

// claimShared claims a key in the store; when another request holds it,
// it returns that request's record.
func (s *Server) claimShared(ctx context.Context, mapKey string, fp [32]byte, lazy bool, intent *runIntent) (store.IdempotencyRecord, bool, error) {
	now := s.opts.Now()
	rec := store.IdempotencyRecord{Key: sharedKey(mapKey), Project: projectOf(ctx), State: store.IdemPending,
		ExpiresAt: now.Add(idemLease)}
	if !lazy {
		rec.Fingerprint = fp[:]
	}
	if intent != nil {
		b, err := json.Marshal(intent)
		if err != nil {
			return store.IdempotencyRecord{}, false, err
		}
		rec.Body = b
	}
	return s.db.ClaimIdempotencyKey(ctx, rec, now)
}

// completeShared records the answer of a claimed key.
func (s *Server) completeShared(e *idemEntry, state string, status int, h http.Header, body []byte) {
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
	if err == nil {
		err = s.db.CompleteIdempotencyKey(context.WithoutCancel(s.ctx), rec)
	}
	if err != nil {
		s.log.Warn("idempotency: the answer was not recorded in the store", "err", err.Error())
	}
}

// forgetShared drops a claimed key whose answer is not remembered.
func (s *Server) forgetShared(mapKey string) {
	if err := s.db.DeleteIdempotencyKey(context.WithoutCancel(s.ctx), sharedKey(mapKey)); err != nil {
		s.log.Warn("idempotency: the claim was not dropped from the store", "err", err.Error())
	}
}

// answerShared answers a request whose key the store knows (rec). It
// returns false when the caller must try to claim the key again (the
// claimant's lease ended).
func (s *Server) answerShared(w http.ResponseWriter, r *http.Request, key string, rec store.IdempotencyRecord, lazy bool, fp *[32]byte, bodyHashed *bool) bool {
	mapped := rec.Key
	for rec.State == store.IdemPending {
		if s.answerIntent(w, r, key, rec, lazy, fp) {
			return true
		}
		if !sleep(r.Context(), idemPoll) {
			return true // the client went away
		}
		now := s.opts.Now()
		again, claimed, err := s.db.ClaimIdempotencyKey(r.Context(), store.IdempotencyRecord{Key: mapped,
			Project: projectOf(r.Context()), State: store.IdemPending, ExpiresAt: now}, now)
		switch {
		case err != nil:
			writeAPIError(w, errIdemRetry())
			return true
		case claimed:
			// The lease ended: drop this probe claim and do the work.
			_ = s.db.DeleteIdempotencyKey(r.Context(), mapped)
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

// answerIntent answers a repeat whose key's claim is still pending with
// the run the claim's request made, when that run exists (see runIntent).
func (s *Server) answerIntent(w http.ResponseWriter, r *http.Request, key string, rec store.IdempotencyRecord, lazy bool, fp *[32]byte) bool {
	if lazy || len(rec.Body) == 0 {
		return false
	}
	var in runIntent
	if json.Unmarshal(rec.Body, &in) != nil || in.RunID == "" {
		return false
	}
	round := -1 // submitToolOutputs: the round the outputs answered
	var run gen.RunObject
	if in.Calls != nil {
		var ok bool
		if run, round, ok = s.eng.submitted(r.Context(), in.ThreadID, in.RunID, in.Calls); !ok {
			return false // not applied (yet): wait for the claim
		}
	} else {
		var err error
		if run, err = s.eng.getRun(r.Context(), in.ThreadID, in.RunID); err != nil {
			return false // not made (yet): wait for the claim
		}
	}
	if len(rec.Fingerprint) > 0 && string(rec.Fingerprint) != string(fp[:]) {
		writeAPIError(w, errKeyReused(key))
		return true
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
		s.reattach(w, r, &idemEntry{stream: true, runID: run.Id, from: from})
		return true
	}
	b, err := json.Marshal(run)
	if err != nil {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header()["Openai-Poll-After-Ms"] = s.eng.poll
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
	return true
}

// sweepIdempotency deletes expired idempotency records every
// idemSweepEvery, until ctx ends.
func (s *Server) sweepIdempotency(ctx context.Context) {
	t := time.NewTicker(idemSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if _, err := s.db.DeleteExpiredIdempotencyKeys(ctx, s.opts.Now()); err != nil && ctx.Err() == nil {
				s.log.Warn("idempotency: expired records were not deleted", "err", err.Error())
			}
		case <-ctx.Done():
			return
		}
	}
}
