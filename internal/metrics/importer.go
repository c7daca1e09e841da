package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

// Outcome labels of cardimport_imports_total and the call histogram.
const (
	OutcomeImported      = "imported"
	OutcomeAlreadyMember = "already_member"
	OutcomeRefused       = "refused"
	OutcomeTransient     = "transient"
	OutcomeRateLimited   = "rate_limited"
	OutcomeSystemic      = "systemic"
)

var outcomes = []string{OutcomeImported, OutcomeAlreadyMember, OutcomeRefused, OutcomeTransient, OutcomeRateLimited, OutcomeSystemic}

// InstrumentImporter returns an Importer that imports through imp and
// counts each call by outcome and WeChat code and times it. The handler
// stays free of Prometheus: it sees the same results and errors.
func (m *Metrics) InstrumentImporter(imp tasks.Importer) tasks.Importer {
	return &instrumented{next: imp, m: m}
}

type instrumented struct {
	next tasks.Importer
	m    *Metrics
}

func (i *instrumented) Import(ctx context.Context, req wechatpay.ImportRequest) (wechatpay.ImportResult, error) {
	start := time.Now()
	res, err := i.next.Import(ctx, req)
	outcome, code := classify(err)
	i.m.duration.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
	i.m.imports.WithLabelValues(outcome, code).Inc()
	return res, err
}

// classify names an import's outcome and WeChat's code, "" when WeChat
// gave none (success, network error, timeout).
func classify(err error) (outcome, code string) {
	if err == nil {
		return OutcomeImported, ""
	}
	var werr *wechatpay.Error
	if errors.As(err, &werr) {
		code = sanitizeCode(werr.Code)
	}
	switch wechatpay.KindOf(err) {
	case wechatpay.KindAlreadyMember:
		return OutcomeAlreadyMember, code
	case wechatpay.KindPermanent:
		return OutcomeRefused, code
	case wechatpay.KindRateLimited:
		return OutcomeRateLimited, code
	case wechatpay.KindSystemic:
		return OutcomeSystemic, code
	}
	return OutcomeTransient, code
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
