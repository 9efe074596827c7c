package server

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Event streams across replicas on PostgreSQL: a write that adds events to
// a run is followed by NOTIFY assistants_run_events with the run's id, and
// every replica LISTENs on one connection and wakes its streams of that
// run, which then read the new events from the store. The notification is
// only a wake-up (the data is always read again), so a lost one costs at
// most the streams' poll interval (subscriberPoll).

// runEventsChannel is the PostgreSQL notification channel of run events.
const runEventsChannel = "assistants_run_events"

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
		for id := range batch {
			if _, err := w.pool.Exec(ctx, "SELECT pg_notify($1, $2)", runEventsChannel, id); err != nil && ctx.Err() == nil {
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
		s.eng.wake(n.Payload)
	}
}
