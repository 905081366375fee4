package rabbit

import "time"

// SetMembersWait shortens how long c waits for every node before declaring a new queue.
func SetMembersWait(c *Consumer, d time.Duration) { c.membersWait = d }
