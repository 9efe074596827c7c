package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"reflect"
)

// maxCachedStmts bounds the statements one connection keeps prepared: the
// store's and River's queries are a few dozen texts (lists vary by clause
// and limit); a query met when the cache is full is prepared for its call
// only, as without the cache.
const maxCachedStmts = 256

// SQLite parses a query every time it is prepared, and database/sql
// prepares every query it is given as text: before this cache, parsing
// was about a third of the store's CPU (a GET run's read, and each of the
// dozen statements of a run's writes and River's job queries). The
// connector opens modernc.org/sqlite connections that keep each query
// prepared after its first use, per connection, and reuse it for the same
// text; a query whose statement is in use (its rows are open) is prepared
// apart for that call. It is the driver's own single-statement reuse
// (rows reset the statement instead of finalizing it), kept across calls.
type connector struct {
	dsn string
	drv driver.Driver
}

// newConnector returns the connector of dsn (modernc.org/sqlite's DSN).
func newConnector(dsn string) (*connector, error) {
	db, err := sql.Open("sqlite", "")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return &connector{dsn: dsn, drv: db.Driver()}, nil
}

// Connect implements driver.Connector.
func (c *connector) Connect(context.Context) (driver.Conn, error) {
	dc, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	x, ok := dc.(ctxConn)
	if !ok {
		_ = dc.Close()
		return nil, errors.New("sqlite store: the driver's connections lack the context methods")
	}
	return &cachedConn{ctxConn: x, stmts: map[string]*cachedStmt{}}, nil
}

// Driver implements driver.Connector.
func (c *connector) Driver() driver.Driver { return c.drv }

// ctxConn is what modernc.org/sqlite's connections implement.
type ctxConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// ctxStmt is what its statements implement.
type ctxStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// cachedConn is a connection with its prepared statements. database/sql
// uses a connection from one goroutine at a time.
type cachedConn struct {
	ctxConn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	ctxStmt
	busy bool // its rows are open
}

// stmt returns q's statement, marked busy, or nil when q is to be run
// unprepared (its statement is busy, the cache is full, or q does not
// prepare: running it reports the error).
func (c *cachedConn) stmt(ctx context.Context, q string) *cachedStmt {
	if st, ok := c.stmts[q]; ok {
		if st.busy {
			return nil
		}
		st.busy = true
		return st
	}
	if len(c.stmts) >= maxCachedStmts {
		return nil
	}
	ds, err := c.ctxConn.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	x, ok := ds.(ctxStmt)
	if !ok {
		_ = ds.Close()
		return nil
	}
	st := &cachedStmt{ctxStmt: x, busy: true}
	c.stmts[q] = st
	return st
}

// ExecContext implements driver.ExecerContext.
func (c *cachedConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	st := c.stmt(ctx, q)
	if st == nil {
		return c.ctxConn.ExecContext(ctx, q, args)
	}
	defer func() { st.busy = false }()
	return st.ExecContext(ctx, args)
}

// QueryContext implements driver.QueryerContext.
func (c *cachedConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	st := c.stmt(ctx, q)
	if st == nil {
		return c.ctxConn.QueryContext(ctx, q, args)
	}
	rows, err := st.QueryContext(ctx, args)
	if err != nil {
		st.busy = false
		return nil, err
	}
	return &cachedRows{Rows: rows, st: st}, nil
}

// Close implements driver.Conn: the statements are finalized first.
func (c *cachedConn) Close() error {
	var errs []error
	for q, st := range c.stmts {
		errs = append(errs, st.Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.ctxConn.Close())...)
}

// cachedRows frees its statement when closed.
type cachedRows struct {
	driver.Rows
	st *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close() // resets the statement
	if r.st != nil {
		r.st.busy = false
		r.st = nil
	}
	return err
}

// The column type methods of the driver's rows.

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if x, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return x.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if x, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return x.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (bool, bool) {
	if x, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return x.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if x, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return x.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if x, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return x.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
