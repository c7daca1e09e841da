package worker_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
	"github.com/cardimport/cardimport/tasks"
)

// TestVerifiedOutcomesEndToEnd: two worker processes against the emulator.
// Some members' first attempt meets a forged, unsigned 400 "already holds
// the card" or 404, others a redirect to a second listener; some members
// already hold the card, one of them among 25 cards. Every new member ends
// imported exactly once, every holder already_member with the code WeChat
// holds, no member is settled on an answer that did not verify, and the
// redirect's target never hears from the workers.
func TestVerifiedOutcomesEndToEnd(t *testing.T) {
	t.Parallel()
	b := setupProcess(t)
	var strays atomic.Int64
	stray := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		strays.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(stray.Close)

	const n = 60
	var fresh, holders []tasks.Payload
	for i := range n {
		p := tasks.Payload{CardID: card, OpenID: fmt.Sprintf("oUpF8uVerified_%05d", i), OutRequestNo: fmt.Sprintf("1900000001-20261204-v%05d", i)}
		switch i % 6 {
		case 0:
			b.srv.ForgeRefusalFor(p.OutRequestNo, 400, "INVALID_REQUEST", wechatpaytest.MessageAlreadyMember)
		case 1:
			b.srv.ForgeRefusalFor(p.OutRequestNo, 404, "NOT_FOUND", "资源不存在")
		case 2:
			b.srv.RedirectFor(p.OutRequestNo, 302, stray.URL+"/v3/marketing/membercard-open/cards/"+card+"/users/import")
		case 3:
			b.srv.Seed(card, p.OpenID)
			holders = append(holders, p)
			continue
		}
		fresh = append(fresh, p)
	}
	var others []string
	for i := range 24 {
		others = append(others, fmt.Sprintf("pOtherCard%02d", i))
	}
	b.srv.SeedCards(holders[0].OpenID, others...)

	b.start(t)
	b.start(t)
	for _, p := range append(append([]tasks.Payload{}, fresh...), holders...) {
		b.enqueue(t, p)
	}
	for _, p := range fresh {
		info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted, 30*time.Second)
		res, err := tasks.DecodeResult(info.Result)
		require.NoError(t, err)
		code, held := b.srv.HeldCode(card, p.OpenID)
		require.True(t, held)
		require.Equal(t, tasks.Result{Outcome: tasks.OutcomeImported, Code: code}, res)
		require.Equal(t, 1, b.srv.ImportCount(card, p.OpenID), "imported exactly once")
	}
	for _, p := range holders {
		info := b.waitState(t, p.OutRequestNo, asynq.TaskStateCompleted, 30*time.Second)
		res, err := tasks.DecodeResult(info.Result)
		require.NoError(t, err)
		code, held := b.srv.HeldCode(card, p.OpenID)
		require.True(t, held)
		require.Equal(t, tasks.Result{Outcome: tasks.OutcomeAlreadyMember, Code: code}, res, "the code WeChat holds")
		require.Zero(t, b.srv.ImportCount(card, p.OpenID))
	}
	q, err := b.insp.GetQueueInfo(b.queue)
	require.NoError(t, err)
	require.Zero(t, q.Archived, "no member settled on an answer that did not verify")
	require.Zero(t, strays.Load(), "the redirect's target received a request")
}
