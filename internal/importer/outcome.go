package importer

import (
	"errors"
	"strings"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

// FailureResult is the result of an import that failed for good with err:
// the one place a failure's reason and WeChat's answer are read from the
// typed error, for the task's result and the dead-letter record alike.
func FailureResult(err error) tasks.Result {
	r := tasks.Result{Outcome: tasks.OutcomeDead, Reason: tasks.ReasonRetriesExhausted}
	var werr *wechatpay.Error
	switch {
	case errors.Is(err, tasks.ErrInvalidPayload):
		r.Reason = tasks.ReasonInvalidPayload
	case errors.As(err, &werr):
		if werr.Kind == wechatpay.KindPermanent {
			r.Reason = tasks.ReasonPermanent
		}
		r.HTTPStatus, r.WeChatCode, r.RequestID = werr.StatusCode, werr.Code, werr.RequestID
	}
	switch {
	case werr != nil && werr.Message != "":
		r.Message = werr.Message
		if werr.Field != "" {
			r.Message += " (field " + werr.Field + ")"
		}
	case err != nil:
		r.Message = strings.TrimSuffix(err.Error(), ": "+asynq.SkipRetry.Error())
	}
	return r
}
