package enqueuecmd

import (
	"errors"
	"fmt"
	"hash/maphash"

	"github.com/hibiken/asynq"
)

// dryRun answers, for `enqueue file --dry-run`, what enqueueing a row would
// have said, without writing to Redis: a duplicate when its out_request_no
// repeats an earlier row of the file or is a task ID already in the queue.
//
// Earlier rows are remembered per shard, as 64-bit hashes of their
// out_request_no (about 40 bytes a row: a dry run of a million rows holds
// some 40 MB, unlike a real run, whose memory stays flat because Redis is
// the memory). Each shard's set is only touched by its own worker, which
// sees a number's rows in file order.
type dryRun struct {
	insp  *asynq.Inspector
	queue string
	seed  maphash.Seed
	seen  []map[uint64]struct{}
}

func newDryRun(connOpt asynq.RedisConnOpt, queue string, shards int) *dryRun {
	d := &dryRun{insp: asynq.NewInspector(connOpt), queue: queue, seed: maphash.MakeSeed(), seen: make([]map[uint64]struct{}, shards)}
	for i := range d.seen {
		d.seen[i] = map[uint64]struct{}{}
	}
	return d
}

// duplicate says whether enqueueing outRequestNo from the given shard would
// be a duplicate.
func (d *dryRun) duplicate(shard int, outRequestNo string) (bool, error) {
	h := maphash.String(d.seed, outRequestNo)
	if _, ok := d.seen[shard][h]; ok {
		return true, nil
	}
	d.seen[shard][h] = struct{}{}
	_, err := d.insp.GetTaskInfo(d.queue, outRequestNo)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		return false, nil
	}
	return false, fmt.Errorf("look up task: %w", err)
}

func (d *dryRun) close() { _ = d.insp.Close() }
