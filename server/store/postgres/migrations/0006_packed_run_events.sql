-- A row of run_events may hold the events of one write, first_seq..seq,
-- packed in data (server/store/internal/sqlstore/eventpack.go); NULL: the
-- one event seq, as every row before.
ALTER TABLE run_events ADD COLUMN first_seq BIGINT;
