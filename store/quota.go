package store

// QuotaMargin is how far below hardCap a workspace's record transactions
// start to count exactly, in turn, under its quota lock (see countUsage).
// The recorder uses the same figure to send such a workspace's requests
// to commit alone instead of in a group with other workspaces.
func QuotaMargin(hardCap int64) int64 { return quotaMargin(hardCap) }
