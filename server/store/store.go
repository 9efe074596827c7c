// Package store defines where the server keeps its data: the Store
// interface, the plain values it reads and writes, its sentinel errors and
// list parameters. Implementations live in their own packages:
//
//   - store/memory: everything in process memory (tests, assistantstest, make demo);
//   - store/sqlite: one SQLite file (modernc.org/sqlite, WAL), the embedded default;
//   - store/postgres: PostgreSQL (pgx v5), for several replicas.
//
// Package store/storetest holds the conformance suite that every
// implementation passes.
//
// # Values
//
// Every object carries the API object it stands for as JSON in Data, which
// the store keeps without reading it, next to the few fields the store
// needs to find, list, lock and scope objects (ids, parent ids, status,
// times). Values are copies: changing one changes nothing in the store.
//
// # Ids, order and pages
//
// Ids are chosen by the caller and sort by creation as byte strings, so
// lists are ordered by id, and list cursors are id comparisons (see
// ListParams) that keep working when the cursor's object was deleted. Every
// list reads about Limit rows, whatever the size of the collection.
//
// # Projects
//
// Every object belongs to a project (DefaultProject unless the caller says
// otherwise). Reads, changes and lists take the project and see only its
// objects: an object of another project is ErrNotFound. An empty project
// argument means DefaultProject.
//
// # Runs, locks and jobs
//
// A thread has at most one active run (status queued, in_progress,
// requires_action or cancelling); the database enforces it. Creating a run
// on a thread that has one, or a message on such a thread other than by
// that run, fails with ErrThreadLocked in the same transaction that would
// have written it. CreateRun and UpdateRun write a run together with its
// steps, messages, events and jobs in one transaction: a committed run
// always has its job, a failed write leaves neither.
package store

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"
)

// DefaultProject is the project of objects created without one.
const DefaultProject = "default"

// Sentinel errors. Implementations wrap them (test with errors.Is).
var (
	// ErrNotFound: no such object in the project (or its parent is gone).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: an object with this id (or key) already exists.
	ErrConflict = errors.New("store: already exists")
	// ErrThreadLocked: the thread has an active run, so it takes no new run
	// and no message except from that run.
	ErrThreadLocked = errors.New("store: thread has an active run")
	// ErrClaimLost means an Idempotency-Key claim is no longer the
	// caller's (its lease lapsed and another request claimed the key, or it
	// was answered).
	ErrClaimLost = errors.New("store: the idempotency claim is no longer the caller's")
	// ErrTooLarge: a file's bytes exceed the limit given to CreateFile.
	ErrTooLarge = errors.New("store: file too large")
	// ErrSchemaTooNew: the database was migrated by a newer binary; this one
	// refuses to use it rather than misread it.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")
	// ErrSchemaMismatch: the database schema is not at the version this
	// binary needs (a readiness check: migrate, or run the matching binary).
	ErrSchemaMismatch = errors.New("store: database schema does not match this binary")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalid: a value the store cannot keep (an empty id, a change of
	// an object's id, parent or project, args that do not encode).
	ErrInvalid = errors.New("store: invalid value")
)

// Run statuses the store knows about: a run in one of these holds its
// thread's lock. Any other status (completed, failed, cancelled, expired,
// incomplete) does not.
const (
	RunQueued         = "queued"
	RunInProgress     = "in_progress"
	RunRequiresAction = "requires_action"
	RunCancelling     = "cancelling"
)

// ActiveRunStatuses lists the statuses that hold a thread's lock.
var ActiveRunStatuses = []string{RunQueued, RunInProgress, RunRequiresAction, RunCancelling}

// IsActive reports whether a run in status holds its thread's lock.
func IsActive(status string) bool { return slices.Contains(ActiveRunStatuses, status) }

// Store keeps every object of the API. All methods are safe for concurrent
// use, also from several processes sharing one database (SQLite file or
// PostgreSQL).
type Store interface {
	// Projects.

	// CreateProject adds a project; ErrConflict if its id exists.
	// DefaultProject always exists.
	CreateProject(ctx context.Context, p Project) error
	// GetProject returns a project or ErrNotFound.
	GetProject(ctx context.Context, id string) (Project, error)
	// ListProjects returns a page of projects (the project argument of
	// ListParams-taking methods does not apply).
	ListProjects(ctx context.Context, lp ListParams) (Page[Project], error)

	// API keys (keys.go).

	// CreateAPIKey adds a key of an existing project: ErrNotFound when
	// the project does not exist, ErrConflict when its id or hash exists.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// GetAPIKeyByHash returns the key whose Hash is hash (also a revoked
	// one: check RevokedAt), or ErrNotFound.
	GetAPIKeyByHash(ctx context.Context, hash []byte) (APIKey, error)
	// ListAPIKeys returns a page of the keys of every project, by id.
	ListAPIKeys(ctx context.Context, lp ListParams) (Page[APIKey], error)
	// RevokeAPIKey marks a key revoked at unix second at and returns it;
	// a key revoked before keeps its first RevokedAt. ErrNotFound when
	// there is no such key.
	RevokeAPIKey(ctx context.Context, id string, at int64) (APIKey, error)
	// CountActiveRuns counts a project's runs in an active status (see
	// IsActive), over all its threads.
	CountActiveRuns(ctx context.Context, project string) (int, error)

	// Assistants.

	// CreateAssistant adds an assistant; ErrConflict if its id exists.
	CreateAssistant(ctx context.Context, a Assistant) error
	// CreateAssistantClaimed is CreateAssistant fenced on an
	// Idempotency-Key claim (see Claim).
	CreateAssistantClaimed(ctx context.Context, a Assistant, c Claim) error
	// GetAssistant returns an assistant or ErrNotFound.
	GetAssistant(ctx context.Context, project, id string) (Assistant, error)
	// UpdateAssistant changes an assistant: fn gets a copy to change inside
	// the store's transaction (it runs once, and must not block); an error
	// from fn is returned as is and changes nothing. Id, project and
	// creation time cannot change.
	UpdateAssistant(ctx context.Context, project, id string, fn func(*Assistant) error) (Assistant, error)
	// DeleteAssistant removes an assistant or returns ErrNotFound.
	DeleteAssistant(ctx context.Context, project, id string) error
	// ListAssistants returns a page of a project's assistants.
	ListAssistants(ctx context.Context, project string, lp ListParams) (Page[Assistant], error)

	// Threads and messages.

	// CreateThread adds a thread and its first messages in one transaction.
	CreateThread(ctx context.Context, t Thread, msgs []Message) error
	// CreateThreadClaimed is CreateThread fenced on an Idempotency-Key
	// claim (see Claim).
	CreateThreadClaimed(ctx context.Context, t Thread, msgs []Message, c Claim) error
	// GetThread returns a thread or ErrNotFound.
	GetThread(ctx context.Context, project, id string) (Thread, error)
	// UpdateThread changes a thread (see UpdateAssistant).
	UpdateThread(ctx context.Context, project, id string, fn func(*Thread) error) (Thread, error)
	// DeleteThread removes a thread with its messages, runs, steps and run
	// events (even an active run: the caller stops it).
	DeleteThread(ctx context.Context, project, id string) error

	// CreateMessage adds a message to a thread: ErrNotFound when the thread
	// does not exist, ErrThreadLocked when the thread has an active run
	// other than m.RunID, ErrConflict when the thread has a message with
	// its id. (Message ids are keyed by thread in the SQL stores, so that a
	// page of a thread is read from one index; the memory store keeps them
	// unique overall. Ids are random enough for this not to matter.)
	CreateMessage(ctx context.Context, m Message) error
	// CreateMessageClaimed is CreateMessage fenced on an Idempotency-Key
	// claim (see Claim); c.Named, which names the message, becomes the
	// claim's body in the same write.
	CreateMessageClaimed(ctx context.Context, m Message, c Claim) error
	// GetMessage returns a message of a thread or ErrNotFound.
	GetMessage(ctx context.Context, project, threadID, id string) (Message, error)
	// UpdateMessage changes a message (see UpdateAssistant).
	UpdateMessage(ctx context.Context, project, threadID, id string, fn func(*Message) error) (Message, error)
	// DeleteMessage removes a message or returns ErrNotFound.
	DeleteMessage(ctx context.Context, project, threadID, id string) error
	// ListMessages returns a page of a thread's messages, only those of
	// runID when it is not empty. ErrNotFound when the thread does not exist.
	ListMessages(ctx context.Context, project, threadID, runID string, lp ListParams) (Page[Message], error)

	// Runs, steps and run events.

	// CreateRun writes nr in one transaction: the thread (when nr.Thread is
	// set) and nr.Messages, the run, its events (numbered from 1) and its
	// jobs. ErrNotFound when the thread does not exist, ErrThreadLocked
	// when it has an active run and nr.Run is active. It returns the run as
	// stored and the events with their sequence numbers.
	CreateRun(ctx context.Context, nr NewRun) (Run, []Event, error)
	// GetRun returns a run of a thread or ErrNotFound.
	GetRun(ctx context.Context, project, threadID, id string) (Run, error)
	// UpdateRun changes a run in one transaction, with the run locked
	// against other writers (also on other replicas): fn gets a copy to
	// change and returns what to write with it (steps, messages, events,
	// jobs). fn runs once and must not block; an error from fn is returned
	// as is and writes nothing. Moving the run into an active status while
	// another run of the thread is active fails with ErrThreadLocked. It
	// returns the run as stored and the events with their sequence numbers.
	UpdateRun(ctx context.Context, project, threadID, id string, fn func(*Run) (RunChange, error)) (Run, []Event, error)
	// ListRuns returns a page of a thread's runs; ErrNotFound when the
	// thread does not exist.
	ListRuns(ctx context.Context, project, threadID string, lp ListParams) (Page[Run], error)
	// ActiveRun returns the run holding a thread's lock, or ErrNotFound.
	ActiveRun(ctx context.Context, project, threadID string) (Run, error)

	// GetStep returns a step of a run or ErrNotFound.
	GetStep(ctx context.Context, project, runID, id string) (Step, error)
	// ListSteps returns a page of a run's steps; ErrNotFound when the run
	// does not exist.
	ListSteps(ctx context.Context, project, runID string, lp ListParams) (Page[Step], error)

	// ListRunEvents returns up to limit events of a run with Seq > afterSeq,
	// in order (limit <= 0 means 1000). Sequence numbers are dense: 1, 2, 3...
	ListRunEvents(ctx context.Context, runID string, afterSeq int64, limit int) ([]Event, error)

	// Files.

	// CreateFile stores a file and its bytes, read from body as they come
	// (never held whole in memory by the SQL stores). It sets f.Bytes to
	// the number of bytes read. More than maxBytes bytes (when > 0) is
	// ErrTooLarge and stores nothing. The file is visible once complete.
	//
	// finish (nil: none) is called once body is read to its end and
	// before the write that makes the file visible: it may change f's
	// fields (not ID, Project nor Bytes), which that write stores (an
	// upload whose fields come after its bytes). An error from it fails
	// the upload, which stores nothing; the error returned wraps it.
	CreateFile(ctx context.Context, f File, body io.Reader, maxBytes int64, finish func(*File) error) (File, error)
	// CreateFileClaimed is CreateFile fenced on an Idempotency-Key claim
	// (see Claim): the write that makes the file visible checks the claim
	// and makes c.Named, which names the file, its body. When the claim is
	// no longer the caller's the file never becomes visible and what was
	// written of it is removed.
	CreateFileClaimed(ctx context.Context, f File, body io.Reader, maxBytes int64, finish func(*File) error, c Claim) (File, error)
	// GetFile returns a file's metadata or ErrNotFound.
	GetFile(ctx context.Context, project, id string) (File, error)
	// OpenFile returns a reader of a file's bytes, which fetches them piece
	// by piece; the caller closes it. ErrNotFound when the file does not
	// exist; a read after the file was deleted fails with ErrNotFound.
	OpenFile(ctx context.Context, project, id string) (io.ReadCloser, error)
	// DeleteFile removes a file and its bytes and detaches it from every
	// vector store holding it (their ids are returned, sorted), or returns
	// ErrNotFound. File batches keep their data.
	DeleteFile(ctx context.Context, project, id string) (vectorStoreIDs []string, err error)
	// ListFiles returns a page of a project's files, only those of purpose
	// when it is not empty.
	ListFiles(ctx context.Context, project, purpose string, lp ListParams) (Page[File], error)

	// Vector stores, their files, batches and chunks.

	// CreateVectorStore adds a vector store and attaches files to it in one
	// transaction, which also enqueues jobs (none by default).
	CreateVectorStore(ctx context.Context, vs VectorStore, files []VectorStoreFile, jobs ...Job) error
	// CreateVectorStoreClaimed is CreateVectorStore fenced on an
	// Idempotency-Key claim (see Claim).
	CreateVectorStoreClaimed(ctx context.Context, c Claim, vs VectorStore, files []VectorStoreFile, jobs ...Job) error
	// GetVectorStore returns a vector store or ErrNotFound.
	GetVectorStore(ctx context.Context, project, id string) (VectorStore, error)
	// UpdateVectorStore changes a vector store (see UpdateAssistant).
	UpdateVectorStore(ctx context.Context, project, id string, fn func(*VectorStore) error) (VectorStore, error)
	// DeleteVectorStore removes a vector store with its file attachments,
	// batches and chunks (the files stay), or returns ErrNotFound.
	DeleteVectorStore(ctx context.Context, project, id string) error
	// ListVectorStores returns a page of a project's vector stores.
	ListVectorStores(ctx context.Context, project string, lp ListParams) (Page[VectorStore], error)
	// VectorStoreFileCounts counts a vector store's files by status.
	VectorStoreFileCounts(ctx context.Context, project, vectorStoreID string) (map[string]int, error)

	// PutVectorStoreFile attaches a file to a vector store, replacing an
	// earlier attachment of the same file (and dropping its chunks), and
	// enqueues jobs (none by default) in the same transaction.
	// ErrNotFound when the vector store does not exist.
	PutVectorStoreFile(ctx context.Context, f VectorStoreFile, jobs ...Job) error
	// GetVectorStoreFile returns a file of a vector store or ErrNotFound.
	GetVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string) (VectorStoreFile, error)
	// UpdateVectorStoreFile changes a vector store file in one transaction:
	// fn changes a copy and returns its chunks: nil leaves the stored
	// chunks as they are, a non-nil slice (even empty) replaces them.
	UpdateVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string, fn func(*VectorStoreFile) ([]Chunk, error)) (VectorStoreFile, error)
	// DeleteVectorStoreFile detaches a file (and drops its chunks), or
	// returns ErrNotFound.
	DeleteVectorStoreFile(ctx context.Context, project, vectorStoreID, fileID string) error
	// ListVectorStoreFiles returns a page of a vector store's files (ordered
	// by file id), only those of batchID and of status when not empty.
	ListVectorStoreFiles(ctx context.Context, project, vectorStoreID, batchID, status string, lp ListParams) (Page[VectorStoreFile], error)
	// ScanChunks calls fn with each chunk of a vector store, by file id and
	// index, reading them in pieces; an error from fn stops the scan and is
	// returned as is.
	ScanChunks(ctx context.Context, project, vectorStoreID string, fn func(Chunk) error) error

	// CreateFileBatch adds a batch and attaches its files (BatchID set to
	// the batch's id) in one transaction, which also enqueues jobs (none
	// by default). ErrNotFound when the vector store does not exist.
	CreateFileBatch(ctx context.Context, b FileBatch, files []VectorStoreFile, jobs ...Job) error
	// CreateFileBatchClaimed is CreateFileBatch fenced on an
	// Idempotency-Key claim (see Claim).
	CreateFileBatchClaimed(ctx context.Context, c Claim, b FileBatch, files []VectorStoreFile, jobs ...Job) error
	// GetFileBatch returns a batch of a vector store or ErrNotFound.
	GetFileBatch(ctx context.Context, project, vectorStoreID, id string) (FileBatch, error)
	// UpdateFileBatch changes a batch (see UpdateAssistant).
	UpdateFileBatch(ctx context.Context, project, vectorStoreID, id string, fn func(*FileBatch) error) (FileBatch, error)

	// Idempotency records.

	// ClaimIdempotencyKey records rec (State IdemPending) when no live
	// record has its key, and reports claimed; existing is then the expired
	// record it replaced, if any (a lapsed claim names what its claimant may
	// have made), or the zero record. Otherwise it returns the live record.
	// A record is live until its ExpiresAt (also a pending one: a claim is
	// a lease, so a claimant that died does not block the key forever).
	ClaimIdempotencyKey(ctx context.Context, rec IdempotencyRecord, now time.Time) (existing IdempotencyRecord, claimed bool, err error)
	// CompleteIdempotencyKey replaces the claim of rec.Key with its answer
	// (rec), when the record is still the caller's claim: IdemPending with
	// ExpiresAt held (compared to the microsecond, as in
	// RenewIdempotencyKey: the lease the caller wrote or last renewed), and
	// reports completed. It reports false, and changes nothing, when the
	// record is gone, answered, or claimed again by another request after
	// the caller's lease ended: the caller lost the key, and the claim or
	// answer of the request that took it over stays. rec may be
	// IdemPending too: the claim is rewritten (its body, and its lease to
	// rec.ExpiresAt), still a claim.
	CompleteIdempotencyKey(ctx context.Context, rec IdempotencyRecord, held time.Time) (completed bool, err error)
	// RenewIdempotencyKey extends a pending claim's lease (the claimant's
	// heartbeat): when the record of key is still IdemPending with
	// ExpiresAt held (compared to the microsecond: the claim the caller
	// wrote or last renewed), it sets ExpiresAt to until and reports
	// renewed. It reports false, and changes nothing, when the record is
	// gone, answered, or claimed again by another request (its ExpiresAt
	// is no longer held): the caller's lease is lost.
	RenewIdempotencyKey(ctx context.Context, key string, held, until time.Time) (renewed bool, err error)
	// DeleteIdempotencyKey drops the claim of key (its request leaves no
	// answer to remember) when it is still the caller's claim: IdemPending
	// with ExpiresAt held, as in CompleteIdempotencyKey; it reports deleted.
	// It reports false, and changes nothing, when the record is unknown,
	// answered, or claimed again by another request.
	DeleteIdempotencyKey(ctx context.Context, key string, held time.Time) (deleted bool, err error)
	// DeleteExpiredIdempotencyKeys removes the answered records whose
	// ExpiresAt is not after now, and the pending ones (claims whose lease
	// lapsed: they name what their claimant may have made, for a repeat
	// that claims the key over them) whose ExpiresAt is not after
	// lapsedBefore (the caller's grace, at most now), and returns how many
	// it removed (the TTL cleanup).
	DeleteExpiredIdempotencyKeys(ctx context.Context, now, lapsedBefore time.Time) (int, error)

	// Jobs.

	// ListJobs returns the jobs of kind (every kind when empty) that
	// committed writes enqueued and that are not finished, oldest first.
	// For tests and diagnostics.
	ListJobs(ctx context.Context, kind string) ([]JobInfo, error)
	// CountJobs returns how many jobs of every kind are not finished, by
	// state (JobInfo.State: "available", "scheduled", "running",
	// "retryable", "pending"; a state with none is absent). It counts in
	// the database, without loading the jobs (the metrics' scrape).
	CountJobs(ctx context.Context) (map[string]int, error)

	// Close releases the store's resources. Methods called after Close
	// return ErrClosed (or the driver's error for a closed pool).
	Close() error
}

// Project scopes objects (issue: projects and keys). Data is opaque.
type Project struct {
	ID        string
	CreatedAt int64 // unix seconds
	Data      []byte
}

// Assistant is an assistant; Data is its API object as JSON.
type Assistant struct {
	Project   string
	ID        string
	CreatedAt int64 // unix seconds
	Data      []byte
}

// Thread is a thread; Data is its API object as JSON.
type Thread struct {
	Project   string
	ID        string
	CreatedAt int64
	Data      []byte
}

// Message is a message of a thread; Data is its API object as JSON.
type Message struct {
	Project   string
	ID        string
	ThreadID  string
	RunID     string // the run that wrote it, or ""
	CreatedAt int64
	Data      []byte
}

// Run is a run of a thread. Data is its API object as JSON; State is the
// run engine's own record (pending tool calls, outputs, usage, round...),
// which the store keeps without reading.
type Run struct {
	Project     string
	ID          string
	ThreadID    string
	AssistantID string
	Status      string // the API's status; see IsActive
	CreatedAt   int64
	ExpiresAt   int64 // unix seconds; 0 means never
	Data        []byte
	State       []byte
	// LastSeq is the sequence number of the run's last event (0: none).
	// Set by the store; ignored on writes.
	LastSeq int64
}

// Step is a step of a run; Data is its API object as JSON.
type Step struct {
	Project   string
	ID        string
	RunID     string
	ThreadID  string
	CreatedAt int64
	Data      []byte
}

// Event is an event of a run, as streamed to clients.
type Event struct {
	RunID string
	// Seq numbers a run's events 1, 2, 3... with no gap; the store assigns
	// it in the writing transaction (ignored on writes).
	Seq  int64
	Type string // e.g. "thread.run.created"
	Data []byte // the event's data as JSON
}

// NewRun is what CreateRun writes in one transaction.
type NewRun struct {
	// Thread, when not nil, is created first (createThreadAndRun), with
	// Messages. Otherwise Messages are added to the run's existing thread.
	Thread   *Thread
	Messages []Message
	Run      Run
	Steps    []Step
	Events   []Event // RunID may be left empty
	Jobs     []Job
	// Claim, when not nil, fences the create on the Idempotency-Key claim
	// of the request that makes the run (see Claim): everything is
	// written only while the claim is still the caller's; otherwise
	// nothing is, and the error is ErrClaimLost. Default nil: not fenced.
	Claim *Claim
}

// RunChange is what UpdateRun writes together with the run.
type RunChange struct {
	// Steps are inserted, or replace the step with the same id.
	Steps []Step
	// Messages are inserted on the run's thread (they are the run's, so the
	// thread's lock does not stop them), or replace the message with the
	// same id.
	Messages []Message
	// Events are appended in order (RunID may be left empty).
	Events []Event
	// Jobs are enqueued.
	Jobs []Job
	// DeleteJobs are the ids of jobs (Job.ID) deleted in the transaction
	// unless they are running; an id that names no job is no error. The
	// run engine deletes a round's backup job in the round's last write
	// (server/jobs.go).
	DeleteJobs []int64
}

// File is an uploaded file's metadata; its bytes are read with OpenFile.
type File struct {
	Project     string
	ID          string
	Purpose     string
	Filename    string
	ContentType string
	Bytes       int64 // set by CreateFile
	CreatedAt   int64
	ExpiresAt   int64 // unix seconds; 0 means never
}

// VectorStore is a vector store; Data is its API object as JSON.
type VectorStore struct {
	Project   string
	ID        string
	CreatedAt int64
	Data      []byte
}

// VectorStoreFile is a file attached to a vector store; Data is its API
// object as JSON.
type VectorStoreFile struct {
	Project       string
	VectorStoreID string
	FileID        string
	BatchID       string // the batch that attached it, or ""
	Status        string // in_progress, completed, failed or cancelled
	CreatedAt     int64
	Data          []byte
}

// FileBatch is a file batch of a vector store; Data is its API object (and
// whatever the server keeps with it) as JSON.
type FileBatch struct {
	Project       string
	ID            string
	VectorStoreID string
	CreatedAt     int64
	Data          []byte
}

// Chunk is a piece of a vector store file's text.
type Chunk struct {
	VectorStoreID string
	FileID        string
	Index         int // from 0 within the file
	Text          string
}

// Idempotency record states.
const (
	IdemPending = "pending" // claimed, the first request is running
	IdemDone    = "done"    // the answer below is kept for replays
	IdemStream  = "stream"  // answered with an event stream: repeats are refused
)

// Claim fences a create on the Idempotency-Key claim of the request that
// makes it (the Create...Claimed methods): the create is written only if,
// in the same transaction, the record of Key is still pending with body
// Body, as the caller claimed it (a request that claims the key once the
// caller's lease lapsed writes a body of its own, which names its own
// object), and the record then stays locked until the create commits, so
// a request taking the key over sees the object made. Otherwise nothing
// is written and the error wraps ErrClaimLost. A lapsed claim that no
// other request took over is still the caller's.
//
// It costs the create one statement on the claim's record (a locking
// SELECT, or an UPDATE when Named is set).
type Claim struct {
	// Key is the claim's record's key (IdempotencyRecord.Key).
	Key string
	// Body is the claim's body as the caller last wrote it: its fence.
	Body []byte
	// Named, when not nil, becomes the claim's body in the same write (it
	// names the object made, when that was not known at claim time).
	// Default nil: the body stays Body.
	Named []byte
}

// IdempotencyRecord remembers one idempotent request.
type IdempotencyRecord struct {
	Key         string // chosen by the caller (scoped by credential)
	Project     string
	Fingerprint []byte // of method, path and body
	State       string // IdemPending, IdemDone or IdemStream
	Status      int
	Header      []byte // the answer's headers, encoded by the caller
	Body        []byte
	ExpiresAt   time.Time
}

// JobArgs is the payload of a job: a value that encodes to JSON, with a
// stable kind. It has the shape of River's JobArgs, so River args types are
// JobArgs.
type JobArgs interface{ Kind() string }

// Job is work to enqueue in the same transaction as a store write: it
// exists if and only if the write commits.
type Job struct {
	Args JobArgs
	// ScheduledAt is when the job becomes available; zero means now.
	ScheduledAt time.Time
	// Queue names the queue; "" means the default queue.
	Queue string
	// MaxAttempts bounds the job's attempts; 0 means the queue's default.
	MaxAttempts int
	// ID, when not nil, receives the job's id once the write has inserted
	// it (before the commit: it names a job only if the write succeeds).
	// RunChange.DeleteJobs takes it. Default nil: the id is not wanted.
	ID *int64
}

// JobInfo describes an enqueued job (ListJobs).
type JobInfo struct {
	Kind        string
	Args        []byte // JSON
	Queue       string
	ScheduledAt time.Time
	State       string
}

// ListParams selects a page of a list, ordered by id.
type ListParams struct {
	// Limit is the page size; 0 means 20.
	Limit int
	// Desc orders newest first.
	Desc bool
	// After keeps items after this id in the chosen order (id > After
	// ascending, id < After descending). The id need not exist.
	After string
	// Before keeps items before this id in the chosen order. With Before
	// alone, the page is the Limit items right before it.
	Before string
}

// DefaultLimit is the page size of a ListParams with Limit 0.
const DefaultLimit = 20

// Normalize returns lp with its defaults applied.
func (lp ListParams) Normalize() ListParams {
	if lp.Limit <= 0 {
		lp.Limit = DefaultLimit
	}
	return lp
}

// Page is one page of a list.
type Page[T any] struct {
	Items   []T
	HasMore bool // more items follow in the direction of the page
}

// ProjectOr returns p, or DefaultProject when p is empty.
func ProjectOr(p string) string {
	if p == "" {
		return DefaultProject
	}
	return p
}
