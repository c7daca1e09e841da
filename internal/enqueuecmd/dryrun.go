package enqueuecmd

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/hibiken/asynq"
)

// dryRun answers, for `enqueue file --dry-run`, what enqueueing a row would
// have said, without writing to Redis: a duplicate when its out_request_no
// repeats an earlier row of the file or is a task ID already in the queue.
//
// Earlier rows are remembered as 64-bit hashes of their out_request_no
// (about 40 bytes a row: a dry run of a million rows holds some 40 MB,
// unlike a real run, whose memory stays flat because Redis is the memory).
// A number's rows all go to one worker (fileImport.runImport), which checks
// them in file order, so the first of them is the one looked up in the
// queue.
type dryRun struct {
	insp  *asynq.Inspector
	queue string
	seed  maphash.Seed

	mu   sync.Mutex
	seen map[uint64]struct{}
}

func newDryRun(insp *asynq.Inspector, queue string) *dryRun {
	return &dryRun{insp: insp, queue: queue, seed: maphash.MakeSeed(), seen: map[uint64]struct{}{}}
}

// duplicate says whether enqueueing outRequestNo would be a duplicate.
func (d *dryRun) duplicate(outRequestNo string) (bool, error) {
	h := maphash.String(d.seed, outRequestNo)
	d.mu.Lock()
	_, repeated := d.seen[h]
	d.seen[h] = struct{}{}
	d.mu.Unlock()
	if repeated {
		return true, nil
	}
	_, err := d.insp.GetTaskInfo(d.queue, outRequestNo)
	if errors.Is(err, asynq.ErrTaskNotFound) || errors.Is(err, asynq.ErrQueueNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up task: %w", err)
	}
	return true, nil
}
