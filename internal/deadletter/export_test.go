package deadletter

// SetReplayHooks makes s's replays call beforeDelete just before they
// remove the archived task and afterEnqueue right after they enqueued the
// new one: the windows where an operator's "run" or a worker's failure
// can land.
func SetReplayHooks(s *Store, beforeDelete, afterEnqueue func(outRequestNo string)) {
	s.beforeDelete, s.afterEnqueue = beforeDelete, afterEnqueue
}
