package server

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Event streams across replicas on PostgreSQL: a write that adds events to
// a run is followed by NOTIFY assistants_run_events with the run's id, and
// every replica LISTENs on one connection and wakes its streams of that
// run, which then read the new events from the store. The notification is
// only a wake-up (the data is always read again), so a lost one costs at
// most the streams' poll interval (subscriberPoll).
//
// The wake-ups queued while a NOTIFY is in flight go out together, in one
// notification (or a few: each payload stays under PostgreSQL's limit,
// maxWakePayload, tag included).
//
// The payload is a version tag, a colon, and the run ids joined by commas:
//
//	v1:run_06h...,run_06j...
//
// This assumes that run ids never hold a colon or a comma: the server makes
// them with newID (the prefix run_ and lower-case base32), and the ids it
// takes from requests pass validID ([A-Za-z0-9_-] only). So the text before
// the first colon, when there is one, is the tag, and a payload without a
// colon has none; parseWake checks every id it reads with validID.
//
// A listener reads a payload by parseWake:
//
//   - tag v1: wakes the streams of the runs named;
//   - no tag: the format of the versions before tags (one run id, or run
//     ids joined by commas), read as it was: wakes the runs named. A
//     replica of an older version keeps waking this one's streams during
//     a rolling upgrade;
//   - any other tag (a newer version's format), or a payload this version
//     cannot read (empty, an empty or invalid id): wakes every local
//     stream once. That is always correct, only costlier: each stream reads
//     its run's events again and finds nothing new, or finds what it was
//     woken for. Such payloads are counted, and logged at debug level at
//     most once per unknownWakeLogEvery.
//
// So a version that changes the format must send it under a new tag (and
// keep reading the tags before it), and the replicas that do not know the
// new tag yet still wake the right streams (with all the others). The other way round, a replica of a version before
// tags does not know the tag: one of the version before batches reads a
// v1 payload as one unknown run id and wakes nothing; one of the version
// that batched (ids joined by commas, no tag) wakes every run named but
// the first, which it reads with the tag on. The streams not woken fall
// back to their poll until the upgrade is done.

// runEventsChannel is the PostgreSQL notification channel of run events.
const runEventsChannel = "assistants_run_events"

// maxWakePayload is the most bytes of one notification's payload, its tag
// included (PostgreSQL refuses a payload of 8000 bytes or more).
const maxWakePayload = 7900

// wakeVersion is the tag of the payloads this version sends; wakeTag begins
// each of them.
const (
	wakeVersion = "v1"
	wakeTag     = wakeVersion + ":"
)

// unknownWakeLogEvery is how often at most the listener logs the payloads
// it could not read (a replica of a newer version sends them during a
// rolling upgrade, maybe one per write: they are counted in between).
const unknownWakeLogEvery = time.Minute

// pgWakeRetry is how long the listener waits before it connects again.
const pgWakeRetry = time.Second

// pgWake sends and receives the wake-ups of one server.
type pgWake struct {
	pool *pgxpool.Pool
	out  chan string // run ids to notify, sent by the notifier goroutine

	// unknown counts the payloads received that parseWake could not read
	// (each woke every local stream).
	unknown atomic.Int64
	// Of the listener goroutine alone: when it last logged such a
	// payload, and how many came since.
	unknownLoggedAt time.Time
	unknownUnlogged int64
}

// startPGWake starts the listener and the notifier of a PostgreSQL store.
func (s *Server) startPGWake(pool *pgxpool.Pool) *pgWake {
	w := &pgWake{pool: pool, out: make(chan string, 1024)}
	s.goBackground(func(ctx context.Context) { w.listen(ctx, s) })
	s.goBackground(func(ctx context.Context) { w.notifier(ctx, s) })
	return w
}

// notify asks for a wake-up of runID's streams on every replica; it never
// blocks (a full queue drops it: the streams poll).
func (w *pgWake) notify(runID string) {
	select {
	case w.out <- runID:
	default:
	}
}

// notifier sends the queued wake-ups, each run once per batch.
func (w *pgWake) notifier(ctx context.Context, s *Server) {
	for {
		var first string
		select {
		case first = <-w.out:
		case <-ctx.Done():
			return
		}
		batch := map[string]bool{first: true}
	drain:
		for {
			select {
			case id := <-w.out:
				batch[id] = true
			default:
				break drain
			}
		}
		for _, payload := range wakePayloads(batch) {
			if _, err := w.pool.Exec(ctx, "SELECT pg_notify($1, $2)", runEventsChannel, payload); err != nil && ctx.Err() == nil {
				s.log.Warn("run events: notify failed", "err", err.Error())
			}
		}
	}
}

// listen holds one connection in LISTEN and wakes the local streams of the
// runs named; it connects again after an error.
func (w *pgWake) listen(ctx context.Context, s *Server) {
	for ctx.Err() == nil {
		if err := w.listenOnce(ctx, s); err != nil && ctx.Err() == nil {
			s.log.Warn("run events: listener stopped; reconnecting", "err", err.Error())
			if !sleep(ctx, pgWakeRetry) {
				return
			}
		}
	}
}

func (w *pgWake) listenOnce(ctx context.Context, s *Server) error {
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// A connection that listened is not handed back to the pool.
		_ = conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+runEventsChannel); err != nil {
		return err
	}
	// Streams that began before the listener (re)connected may have
	// missed a wake-up: wake them all once.
	s.eng.wakeAll()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		ids, all := parseWake(n.Payload)
		if all {
			w.unknownPayload(s.log, n.Payload)
			s.eng.wakeAll()
			continue
		}
		for _, id := range ids {
			s.eng.wake(id)
		}
	}
}

// parseWake reads a notification's payload (see the package comment): the
// run ids whose streams to wake, or all when the payload is not of a format
// this version knows and every stream must be woken.
func parseWake(payload string) (ids []string, all bool) {
	tag, list, tagged := strings.Cut(payload, ":")
	switch {
	case !tagged:
		list = payload // the format before tags
	case tag != wakeVersion:
		return nil, true
	}
	ids = strings.Split(list, ",")
	for _, id := range ids {
		if !validID(id) {
			return nil, true
		}
	}
	return ids, false
}

// unknownPayload counts a payload parseWake could not read, and logs it at
// debug level with those counted since, at most once per
// unknownWakeLogEvery. Only the listener goroutine calls it.
func (w *pgWake) unknownPayload(log *slog.Logger, payload string) {
	w.unknown.Add(1)
	w.unknownUnlogged++
	now := time.Now()
	if !w.unknownLoggedAt.IsZero() && now.Sub(w.unknownLoggedAt) < unknownWakeLogEvery {
		return
	}
	log.Debug("run events: notifications of an unknown format (a replica of a newer version?) woke every stream",
		"count", w.unknownUnlogged, "payload_start", payload[:min(len(payload), 32)])
	w.unknownLoggedAt, w.unknownUnlogged = now, 0
}

// wakePayloads joins the run ids of a batch into as few payloads as
// maxWakePayload allows, each wakeTag followed by ids joined by commas (an
// id too long to fit with the tag goes alone).
func wakePayloads(ids map[string]bool) []string {
	var out []string
	var b strings.Builder
	for id := range ids {
		if b.Len() > len(wakeTag) && b.Len()+1+len(id) > maxWakePayload {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() == 0 {
			b.WriteString(wakeTag)
		} else {
			b.WriteByte(',')
		}
		b.WriteString(id)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}
