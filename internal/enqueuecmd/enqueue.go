package enqueuecmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/tasks"
)

// enqueue puts the import of p into the queue. It reports a duplicate when
// a task with the same out_request_no (the task ID) is still in Redis,
// whether waiting, running, retrying, archived or kept after completion:
// the member was enqueued before, and importing it twice is what the ID is
// there to prevent, so it is not an error.
func enqueue(ctx context.Context, client *asynq.Client, p tasks.Payload, opts []tasks.Option) (duplicate bool, err error) {
	task, err := tasks.NewImportTask(p, opts...)
	if err != nil {
		return false, fmt.Errorf("new task: %w", err)
	}
	_, err = client.EnqueueContext(ctx, task)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, asynq.ErrTaskIDConflict), errors.Is(err, asynq.ErrDuplicateTask):
		return true, nil
	}
	return false, fmt.Errorf("enqueue task: %w", err)
}
