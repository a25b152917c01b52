package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// transientCodes are the SQLSTATEs of failures that say nothing about the
// request itself: the same request may well succeed when retried.
var transientCodes = map[string]bool{
	"57014": true, // query_canceled: statement_timeout
	"55P03": true, // lock_not_available: lock_timeout
	"40001": true, // serialization_failure
	"40P01": true, // deadlock_detected
	"57P01": true, // admin_shutdown
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now: starting up, or in recovery
	"53300": true, // too_many_connections
	"25P03": true, // idle_in_transaction_session_timeout
}

// IsTransient reports whether err is a failure of the database or of the
// way to it rather than of the request: a timeout (a statement's or a
// lock's, or a context deadline such as the recorder's bound or the wait
// for a pooled connection), a serialization failure or deadlock, a server
// shutting down or refusing connections, a connection that could not be
// made or was lost, a closed pool. The request may be retried; a failed
// COMMIT may or may not have taken effect, which an external_id makes safe
// to retry.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception.
		return transientCodes[pgErr.Code] || strings.HasPrefix(pgErr.Code, "08")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) ||
		errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, puddle.ErrClosedPool)
}
