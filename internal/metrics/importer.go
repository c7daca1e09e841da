package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/wechatpay"
)

// Outcome labels of cardimport_imports_total and the call histogram.
const (
	OutcomeImported      = "imported"
	OutcomeAlreadyMember = "already_member"
	OutcomeRefused       = "refused"
	OutcomeTransient     = "transient"
	OutcomeUnverified    = "unverified"
	OutcomeRateLimited   = "rate_limited"
	OutcomeSystemic      = "systemic"
)

var outcomes = []string{OutcomeImported, OutcomeAlreadyMember, OutcomeRefused, OutcomeTransient, OutcomeUnverified, OutcomeRateLimited, OutcomeSystemic}

// InstrumentImporter returns an Importer that calls WeChat through imp and
// times each import call by its outcome and counts each list call. The
// handler stays free of Prometheus: it sees the same results and errors.
// How an attempt ended (an already-member is an import refused, then a
// list) is counted by ObserveAttempt, which the handler calls.
func (m *Metrics) InstrumentImporter(imp importer.Importer) importer.Importer {
	return &instrumented{next: imp, m: m}
}

type instrumented struct {
	next importer.Importer
	m    *Metrics
}

func (i *instrumented) Import(ctx context.Context, req wechatpay.ImportRequest) (wechatpay.ImportResult, error) {
	start := time.Now()
	res, err := i.next.Import(ctx, req)
	outcome, _ := classify(err)
	i.m.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	return res, err
}

func (i *instrumented) ListCards(ctx context.Context, req wechatpay.ListCardsRequest) (wechatpay.CardPage, error) {
	page, err := i.next.ListCards(ctx, req)
	outcome := "listed"
	if err != nil {
		outcome = wechatpay.KindOf(err).String()
	}
	i.m.cardLists.WithLabelValues(outcome).Inc()
	return page, err
}

// ObserveAttempt counts one attempt that reached WeChat by how it ended:
// outcome is tasks' settled outcome (imported, already_member) or the kind
// of the error, code WeChat's code if any. The handler calls it
// (importer.HandlerConfig.Observe).
func (m *Metrics) ObserveAttempt(outcome importer.AttemptOutcome, code string) {
	m.imports.WithLabelValues(label(outcome), sanitizeCode(code)).Inc()
}

// label names an attempt's outcome as the metrics always have: a
// permanent refusal is "refused".
func label(o importer.AttemptOutcome) string {
	if o == importer.AttemptOutcome(wechatpay.KindPermanent.String()) {
		return OutcomeRefused
	}
	return string(o)
}

// classify names a call's outcome and WeChat's code, "" when WeChat gave
// none (success, network error, timeout).
func classify(err error) (outcome, code string) {
	if err == nil {
		return OutcomeImported, ""
	}
	var werr *wechatpay.Error
	if errors.As(err, &werr) {
		code = sanitizeCode(werr.Code)
	}
	return label(importer.AttemptOutcome(wechatpay.KindOf(err).String())), code
}

// sanitizeCode keeps the label set small: WeChat's codes are upper-case
// words (PARAM_ERROR, NO_AUTH); anything else an answer might carry
// becomes "OTHER" rather than a new series.
func sanitizeCode(code string) string {
	if len(code) > 64 {
		return "OTHER"
	}
	for _, r := range code {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return "OTHER"
		}
	}
	return code
}

// ObserveWebhook counts one webhook delivery by its result and times it.
func (m *Metrics) ObserveWebhook(result string, d time.Duration) {
	m.webhooks.WithLabelValues(result).Inc()
	m.webhookDuration.WithLabelValues(result).Observe(d.Seconds())
}
