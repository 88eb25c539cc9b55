"""The change log: one row per committed write to a run, read back in commit order.

Every write to a run — its creation, each transition, each update that moves no state
(heartbeat, progress, budget, an admin edit) and its deletion — appends one `Change` row in the
same transaction (`runs.changelog.writer`). Boards never depend on a message arriving: each
server process's hub reads this table from a commit-safe cursor (`runs.changelog.reader`),
woken early by a hint after commit (`runs.changelog.hints`) and every `LOG_POLL_INTERVAL`
anyway. Rows are pruned after a retention window (`runs.changelog.pruning`); the audit trail
(`Transition`) is history and is never pruned.
"""
