// Package e2e holds the end-to-end tests of the server through its public
// surface only (the HTTP API, the `assistants serve` command line and
// server.Options.Store), on every store:
//
//   - the same flows (assistant, thread, messages, a run to completed, a
//     tool call answered with submit, streaming, file upload and download,
//     vector stores) on memory, SQLite and PostgreSQL;
//   - a restart test: serve on SQLite is killed with SIGKILL while a run
//     waits in requires_action, started again on the same --data, and
//     everything is there and the run finishes after the submit;
//   - a two-replica test: two serve processes on one PostgreSQL database; a
//     run created on A is streamed and polled on B, A is killed mid-run and
//     the run completes on B;
//   - benchmarks of the stores side by side, and the resident memory of
//     serve on SQLite after many messages.
//
// PostgreSQL tests use internal/pgtest: a schema per test on
// ASSISTANTS_TEST_DATABASE_URL; with CI=true an unreachable database fails
// them, elsewhere they are skipped with one loud line.
package e2e
