package store

import "time"

// Internals the tests of package store_test look at.

// WaitLockStripes is waitLockStripes.
const WaitLockStripes = waitLockStripes

// WaitLockKey is the two-key advisory lock of a contact's wait stripe.
func WaitLockKey(contact [16]byte) (int32, int32) { return waitLockClass, waitStripe(contact) }

// SetNow replaces the store's clock (reads of retention and the catalog's
// count window use it).
func SetNow(s *Store, now func() time.Time) { s.now = now }

// CASAttempts is how many compare-and-swaps UpdateContactOnce tries.
const CASAttempts = casAttempts

// SetCopyFromRows sets the fewest events recorded with COPY and returns
// the setting it replaced; for benchmarks, which run alone.
func SetCopyFromRows(n int) int {
	old := copyFromRows
	copyFromRows = n
	return old
}

// SetSplitLive turns splitLive on or off and returns what it was.
func SetSplitLive(on bool) bool {
	old := splitLiveBuckets
	splitLiveBuckets = on
	return old
}
