package deadletter

import "github.com/redis/go-redis/v9"

// This file is the one place the project reaches into asynq's own Redis
// layout (asynq v0.26.0, internal/base and internal/rdb), which asynq does
// not export. TestAsynqLayout fails loudly when an asynq upgrade changes
// what it relies on. The reaches, and why each is needed:
//
//   - asynqTaskKey: a task's hash. Settle writes the import's result into
//     its "result" field (where asynq's ResultWriter puts it, and where
//     asynq's Inspector reads it) in the same script that removes the dead
//     letter and counts the run: one round trip and one atomic step,
//     where ResultWriter would be a second round trip with a window in
//     which the outcome is counted and not stored, or stored and not
//     counted. The sweep settles tasks asynq archived out of any handler,
//     where no ResultWriter exists. results' settle script also reads the
//     field back, so that a task settled twice is counted once.
//   - asynqArchivedKey and deleteArchivedScript: a replay deletes the
//     archived task and reads its dead letter's failure count in one step
//     (Inspector.DeleteTask and a separate read would let a failure land
//     in between and be lost).

// asynqTaskKey is the hash of task id of queue (base.TaskKey).
func asynqTaskKey(queue, id string) string { return "asynq:{" + queue + "}:t:" + id }

// asynqArchivedKey is the sorted set of queue's archived tasks
// (base.ArchivedKey).
func asynqArchivedKey(queue string) string { return "asynq:{" + queue + "}:archived" }

// deleteArchivedScript deletes the asynq task KEYS[1] (ID ARGV[1]) only if
// it is archived, as asynq's deleteTaskCmd (v0.26.0, internal/rdb) does for
// an archived task: out of the archive's sorted set KEYS[2], its unique
// lock if it still holds one, its hash. An archived task is in no group.
// It returns the task's state ("" without a task) and the record KEYS[3]'s
// failure count, read in the same step, for markReplayed.
var deleteArchivedScript = redis.NewScript(`
local failures = redis.call("HGET", KEYS[3], "failures") or "0"
local state = redis.call("HGET", KEYS[1], "state")
if not state then
	return {"", failures}
end
if state ~= "archived" then
	return {state, failures}
end
if redis.call("ZREM", KEYS[2], ARGV[1]) == 0 then
	return redis.error_reply("task is not found in zset: " .. KEYS[2])
end
local unique_key = redis.call("HGET", KEYS[1], "unique_key")
if unique_key and unique_key ~= "" and redis.call("GET", unique_key) == ARGV[1] then
	redis.call("DEL", unique_key)
end
redis.call("DEL", KEYS[1])
return {state, failures}
`)
