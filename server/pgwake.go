package server

import (
	"context"
	"strings"
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
// The wake-ups queued while a NOTIFY is in flight go out together: one
// notification whose payload is their run ids joined by commas (ids never
// hold one), cut to stay under PostgreSQL's payload limit. A replica of an
// earlier version reads such a payload as one unknown run id and wakes
// nothing: its streams fall back to their poll.

// runEventsChannel is the PostgreSQL notification channel of run events.
const runEventsChannel = "assistants_run_events"

// maxWakePayload is the most bytes of run ids one notification carries
// (PostgreSQL refuses a payload of 8000 bytes or more).
const maxWakePayload = 7900

// pgWakeRetry is how long the listener waits before it connects again.
const pgWakeRetry = time.Second

// pgWake sends and receives the wake-ups of one server.
type pgWake struct {
	pool *pgxpool.Pool
	out  chan string // run ids to notify, sent by the notifier goroutine
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
		for id := range strings.SplitSeq(n.Payload, ",") {
			s.eng.wake(id)
		}
	}
}

// wakePayloads joins the run ids of a batch into as few payloads as
// maxWakePayload allows (an id longer than that goes alone).
func wakePayloads(ids map[string]bool) []string {
	var out []string
	var b strings.Builder
	for id := range ids {
		if b.Len() > 0 && b.Len()+1+len(id) > maxWakePayload {
			out = append(out, b.String())
			b.Reset()
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(id)
	}
	if b.Len() > 0 {
		out = append(out, b.String())
	}
	return out
}
