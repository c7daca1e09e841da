package importer_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/importer"
	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/tasks"
)

// fakeWeChat answers the handler's calls from a script: no network, no
// Redis, microseconds a case.
type fakeWeChat struct {
	imp      error
	code     string
	cards    []wechatpay.HeldCard
	listErr  error
	imports  int
	listings int
}

func (f *fakeWeChat) Import(context.Context, wechatpay.ImportRequest) (wechatpay.ImportResult, error) {
	f.imports++
	if f.imp != nil {
		return wechatpay.ImportResult{}, f.imp
	}
	return wechatpay.ImportResult{Code: f.code, RequestID: "req-1"}, nil
}

func (f *fakeWeChat) ListCards(context.Context, wechatpay.ListCardsRequest) (wechatpay.CardPage, error) {
	f.listings++
	if f.listErr != nil {
		return wechatpay.CardPage{}, f.listErr
	}
	return wechatpay.CardPage{Cards: f.cards, Total: len(f.cards), RequestID: "req-2"}, nil
}

// settledStore keeps what the handler settled.
type settledStore struct{ got []tasks.Result }

func (s *settledStore) Settle(_ context.Context, _ string, _ tasks.Payload, r tasks.Result) error {
	s.got = append(s.got, r)
	return nil
}

const card = "pbLatjvWOibDc5-TBnbUk1pD12o0"

func refusal(status int, code string) *wechatpay.Error {
	return &wechatpay.Error{Kind: wechatpay.KindPermanent, StatusCode: status, Code: code, Message: "refused"}
}

// TestDecision is the handler's decision table with a fake WeChat: what
// each answer settles, and what asynq is told (retry or not, counted or
// not).
func TestDecision(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		wechat      fakeWeChat
		wantOutcome tasks.Outcome // "" when nothing is settled
		wantCode    string
		wantSkip    bool // archived at once (asynq.SkipRetry)
		wantCounted bool // IsFailure: spends the retry budget
		wantLists   int
	}{
		{name: "imported", wechat: fakeWeChat{code: "111111111111"}, wantOutcome: tasks.OutcomeImported, wantCode: "111111111111"},
		{name: "refused, card listed: already a member", wechat: fakeWeChat{imp: refusal(400, "INVALID_REQUEST"), cards: []wechatpay.HeldCard{{CardID: "other", Code: "9"}, {CardID: card, Code: "222222222222"}}},
			wantOutcome: tasks.OutcomeAlreadyMember, wantCode: "222222222222", wantLists: 1},
		{name: "refused, card not listed: dead", wechat: fakeWeChat{imp: refusal(400, "INVALID_REQUEST"), cards: []wechatpay.HeldCard{{CardID: "other", Code: "9"}}},
			wantOutcome: tasks.OutcomeDead, wantSkip: true, wantCounted: true, wantLists: 1},
		{name: "refused, list fails: retried", wechat: fakeWeChat{imp: refusal(400, "INVALID_REQUEST"), listErr: &wechatpay.Error{Kind: wechatpay.KindTransient, StatusCode: 500}},
			wantCounted: true, wantLists: 1},
		{name: "refused, list unverified: retried", wechat: fakeWeChat{imp: refusal(400, "INVALID_REQUEST"), listErr: &wechatpay.Error{Kind: wechatpay.KindUnverified, StatusCode: 200}},
			wantCounted: true, wantLists: 1},
		{name: "404: dead, no list asked", wechat: fakeWeChat{imp: refusal(404, "NOT_FOUND")}, wantOutcome: tasks.OutcomeDead, wantSkip: true, wantCounted: true},
		{name: "unverified refusal: retried, never settled", wechat: fakeWeChat{imp: &wechatpay.Error{Kind: wechatpay.KindUnverified, StatusCode: 400, Code: "INVALID_REQUEST"}}, wantCounted: true},
		{name: "rate limited: retried, not counted", wechat: fakeWeChat{imp: &wechatpay.Error{Kind: wechatpay.KindRateLimited, StatusCode: 429}}},
		{name: "signature refused: retried, not counted", wechat: fakeWeChat{imp: &wechatpay.Error{Kind: wechatpay.KindSystemic, StatusCode: 401}}},
		{name: "held back by the guard: retried, not counted", wechat: fakeWeChat{imp: &importer.DeferredError{Reason: importer.DeferCircuitOpen}}},
		{name: "no answer: retried, counted", wechat: fakeWeChat{imp: errors.New("connection reset")}, wantCounted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, store := tt.wechat, &settledStore{}
			h, err := importer.NewHandler(importer.HandlerConfig{Importer: &w, Results: store})
			require.NoError(t, err)
			data, err := json.Marshal(tasks.Payload{CardID: card, OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "decision-1"})
			require.NoError(t, err)
			err = h.ProcessTask(context.Background(), asynq.NewTask(tasks.TypeImport, data))
			require.Equal(t, tt.wantLists, w.listings, "card lists asked")
			if tt.wantOutcome == "" {
				require.Error(t, err)
				require.Empty(t, store.got, "nothing settled")
			} else {
				require.Len(t, store.got, 1)
				require.Equal(t, tt.wantOutcome, store.got[0].Outcome)
				require.Equal(t, tt.wantCode, store.got[0].Code)
			}
			require.Equal(t, tt.wantSkip, errors.Is(err, asynq.SkipRetry), "archived at once")
			if err != nil {
				require.Equal(t, tt.wantCounted, importer.IsFailure(err), "spends the retry budget")
			}
		})
	}
}
