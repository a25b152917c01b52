package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Default timeouts of record transactions. A record transaction's
// statements take milliseconds (a group of 500 events or a batch of 1,000
// a few tens), and it holds its locks (contact rows, the quota lock near a
// cap) only that long. 10 s per statement is two orders of magnitude above
// that, yet below the recorder's 30 s bound on a group and the HTTP
// server's 60 s write timeout, so a statement that is stuck ends in an
// answer the client can retry. 3 s of waiting for one lock means something
// holds it far longer than any record transaction does (a forgotten manual
// transaction, a stuck process); the group, which may mix workspaces, is
// better failed and retried than stalled behind it.
const (
	DefaultStatementTimeout = 10 * time.Second
	DefaultLockTimeout      = 3 * time.Second
)

// recordBeginQuery starts a record transaction with its timeouts. It is
// sent as one simple-protocol message with BEGIN, so the timeouts cost no
// round trip, only the server's work on two more statements (measured:
// about 30 µs a transaction, 1–2% of the ~2 ms of a transaction of ten
// requests, below what make bench can tell). SET LOCAL ends with the
// transaction, so nothing else on the pool (nor `signalbox migrate`, which
// has a connection of its own) is bound by them; timeouts for the whole
// pool (its RuntimeParams) would cost nothing at all but would also cut
// legitimately long statements short, such as deleting a contact with all
// its events.
//
// The transaction's statements also use PostgreSQL's generic plans: they
// are prepared once per connection and their best plan does not depend on
// the values (ids, names, arrays of them), while planning a custom plan
// for each execution, as PostgreSQL otherwise does for the first five and
// keeps doing when the generic plan's estimate looks worse, cost about
// half a millisecond per statement for the CTEs of the usage statement and
// the trigger and wait lookups: more than executing most of them.
func recordBeginQuery(statement, lock time.Duration) string {
	return fmt.Sprintf("BEGIN; SET LOCAL statement_timeout = %d; SET LOCAL lock_timeout = %d; %s",
		statement.Milliseconds(), lock.Milliseconds(), setLocalGeneric)
}

// inRecordTx runs fn in a record transaction, committing if it returns nil.
func (s *Store) inRecordTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: s.recordBegin}, fn)
}
