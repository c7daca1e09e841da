package wechatpaytest_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/wechatpay-apiv3/wechatpay-go/core"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// TestListPaging: a member holding 25 cards (24 seeded, one imported) is
// listed 20 then 5, total_count 25 on every page, each card with the code
// the member holds, and every answer verifies.
func TestListPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	others := make([]string, 24)
	for i := range others {
		others[i] = fmt.Sprintf("pOther%02d", i)
	}
	b.srv.SeedCards(openid, others...)
	imported, _, err := b.importMember(t, testCard, importBody{OpenID: openid, OutRequestNo: "page-1"})
	require.NoError(t, err)
	b.srv.Seed("pSomeoneElse", "oAnotherMember")

	tests := []struct {
		name      string
		query     []string
		wantCards int
		wantLimit int
	}{
		{name: "page 0 of 20", query: []string{"offset", "0", "limit", "20"}, wantCards: 20, wantLimit: 20},
		{name: "page 1 of 20", query: []string{"offset", "1", "limit", "20"}, wantCards: 5, wantLimit: 20},
		{name: "page 2 of 20 is empty", query: []string{"offset", "2", "limit", "20"}, wantCards: 0, wantLimit: 20},
		{name: "limit absent is 20", query: []string{"appid", "wx8888888888888888"}, wantCards: 20, wantLimit: 20},
		{name: "page 4 of 5", query: []string{"offset", "4", "limit", "5"}, wantCards: 5, wantLimit: 5},
		{name: "far beyond the end", query: []string{"offset", "9223372036854775807", "limit", "20"}, wantCards: 0, wantLimit: 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, res, err := listCards(t, b.client, listURL(b.srv.URL, openid, tt.query...))

			require.NoError(t, err, "a 200 the SDK verified")
			require.Equal(t, b.keys.PublicKeyID, res.Response.Header.Get("Wechatpay-Serial"))
			require.Len(t, page.Data, tt.wantCards)
			require.Equal(t, 25, page.TotalCount)
			require.Equal(t, tt.wantLimit, page.Limit)
			require.NotNil(t, page.Data, "an empty page is [], not null")
		})
	}

	// Paging as a worker does: until total_count cards were seen.
	seen := map[string]string{}
	for offset := 0; ; offset++ {
		page, _, err := listCards(t, b.client, listURL(b.srv.URL, openid, "offset", strconv.Itoa(offset), "limit", "20"))
		require.NoError(t, err)
		require.Equal(t, offset, page.Offset)
		for _, c := range page.Data {
			require.NotContains(t, seen, c.CardID, "a card listed twice")
			seen[c.CardID] = c.Code
		}
		if len(seen) >= page.TotalCount || len(page.Data) == 0 {
			break
		}
	}
	require.Len(t, seen, 25)
	require.Equal(t, imported, seen[testCard], "the imported card, with the code the import gave")
	for _, card := range others {
		code, ok := b.srv.HeldCode(card, openid)
		require.True(t, ok)
		require.Regexp(t, cardCode, code)
		require.Equal(t, code, seen[card])
	}
	require.NotContains(t, seen, "pSomeoneElse", "only the member's own cards")
	require.Equal(t, 1, b.srv.Stats().Imports, "seeded cards are not imports")
	require.Equal(t, 1, b.srv.Members())
}

// TestHoldersAreConfirmedByTheList: every way of holding a card is
// refused by the import with MessageAlreadyMember and listed by the list
// call with the same code every time.
func TestHoldersAreConfirmedByTheList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		openid string
		before func(*testing.T, *testBundle)
	}{
		{name: "seeded", openid: openid, before: func(t *testing.T, b *testBundle) {
			require.Regexp(t, cardCode, b.srv.Seed(testCard, openid))
		}},
		{name: "imported under another out_request_no", openid: openid, before: func(t *testing.T, b *testBundle) {
			_, _, err := b.importMember(t, testCard, importBody{OpenID: openid, OutRequestNo: "other-no"})
			require.NoError(t, err)
		}},
		{name: "by the o_member_ prefix", openid: wechatpaytest.OpenIDPrefixMember + "holder1", before: func(*testing.T, *testBundle) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			tt.before(t, b)
			importsBefore := b.srv.Stats().Imports

			for attempt := range 2 {
				_, res, err := b.importMember(t, testCard, importBody{OpenID: tt.openid, OutRequestNo: "holder-" + strconv.Itoa(attempt)})
				apiErr := apiError(t, err)
				require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
				require.Equal(t, "INVALID_REQUEST", apiErr.Code)
				require.Equal(t, wechatpaytest.MessageAlreadyMember, apiErr.Message)
				require.Equal(t, "用户已有已生效的会员卡", apiErr.Message)
				require.NoError(t, publicKeyValidator(b.keys).Validate(t.Context(), res.Response), "the refusal is signed")
			}

			held, ok := b.srv.HeldCode(testCard, tt.openid)
			require.True(t, ok)
			require.Regexp(t, cardCode, held)
			for range 2 {
				page, _, err := listCards(t, b.client, listURL(b.srv.URL, tt.openid))
				require.NoError(t, err)
				require.Equal(t, 1, page.TotalCount)
				require.Equal(t, testCard, page.Data[0].CardID)
				require.Equal(t, held, page.Data[0].Code, "the same code every time")
			}
			require.Equal(t, importsBefore, b.srv.Stats().Imports, "a refused holder imports nothing")
		})
	}
}

// TestSeededCodesAreUniquePerCard: Seed gives every member of a card a
// code of their own, and the same one when seeded again.
func TestSeededCodesAreUniquePerCard(t *testing.T) {
	t.Parallel()
	b := setup(t)
	codes := map[string]bool{}
	for i := range 200 {
		code := b.srv.Seed(testCard, fmt.Sprintf("oSeed%03d", i))
		require.Regexp(t, cardCode, code)
		require.False(t, codes[code], "code given twice")
		codes[code] = true
	}
	again := b.srv.Seed(testCard, "oSeed000")
	held, ok := b.srv.HeldCode(testCard, "oSeed000")
	require.True(t, ok)
	require.Equal(t, held, again)
	_, ok = b.srv.HeldCode(testCard, "oNobody")
	require.False(t, ok)
	require.Zero(t, b.srv.Members())
}

func TestListParameters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		openid    string
		query     []string
		wantField string
	}{
		{name: "openid missing", wantField: "/openid"},
		{name: "openid too long", openid: strings.Repeat("o", 129), wantField: "/openid"},
		{name: "limit over 20", openid: openid, query: []string{"limit", "21"}, wantField: "/limit"},
		{name: "limit 0", openid: openid, query: []string{"limit", "0"}, wantField: "/limit"},
		{name: "limit not a number", openid: openid, query: []string{"limit", "ten"}, wantField: "/limit"},
		{name: "offset negative", openid: openid, query: []string{"offset", "-1"}, wantField: "/offset"},
		{name: "offset not a number", openid: openid, query: []string{"offset", "1.5"}, wantField: "/offset"},
		{name: "appid too long", openid: openid, query: []string{"appid", fmt.Sprintf("wx%031d", 0)}, wantField: "/appid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)

			_, res, err := listCards(t, b.client, listURL(b.srv.URL, tt.openid, tt.query...))

			apiErr := apiError(t, err)
			require.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
			require.Equal(t, "PARAM_ERROR", apiErr.Code)
			detail, ok := apiErr.Detail.(map[string]any)
			require.True(t, ok, "detail is %T", apiErr.Detail)
			require.Equal(t, tt.wantField, detail["field"])
			require.Equal(t, "query", detail["location"])
			require.NoError(t, publicKeyValidator(b.keys).Validate(t.Context(), res.Response))
			require.Equal(t, 1, b.srv.Stats().Lists)
		})
	}
}

// TestListFaults: the outage and the list's own controls hit the list
// call; the import's FailNext does not, nor does FailNextList hit imports.
func TestListFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		schedule   func(*wechatpaytest.Server)
		wantStatus int // of the first list call; 0 when the SDK refuses a forged 200
		wantCode   string
	}{
		{name: "outage", schedule: func(s *wechatpaytest.Server) { s.SetOutage(http.StatusServiceUnavailable) }, wantStatus: 503, wantCode: "SERVICE_UNAVAILABLE"},
		{name: "FailNextList", schedule: func(s *wechatpaytest.Server) { s.FailNextList(1, 500, "SYSTEM_ERROR", "系统错误") }, wantStatus: 500, wantCode: "SYSTEM_ERROR"},
		{name: "ForgeNextList", schedule: func(s *wechatpaytest.Server) { s.ForgeNextList(1) }},
		{name: "FailNext is for imports", schedule: func(s *wechatpaytest.Server) { s.FailNext(1, 500, "SYSTEM_ERROR", "系统错误") }, wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.srv.Seed(testCard, openid)
			tt.schedule(b.srv)

			_, res, err := listCards(t, b.client, listURL(b.srv.URL, openid))

			switch tt.wantStatus {
			case 0:
				require.Error(t, err)
				require.False(t, errors.As(err, new(*core.APIError)), "a forged 200 is no error answer")
				require.Contains(t, res.Response.Header.Get("Wechatpay-Signature"), "WECHATPAY/SIGNTEST/")
			case 200:
				require.NoError(t, err)
			default:
				apiErr := apiError(t, err)
				require.Equal(t, tt.wantStatus, apiErr.StatusCode)
				require.Equal(t, tt.wantCode, apiErr.Code)
				require.NoError(t, publicKeyValidator(b.keys).Validate(t.Context(), res.Response), "signed")
			}
			b.srv.SetOutage(0)
			page, _, err := listCards(t, b.client, listURL(b.srv.URL, openid))
			require.NoError(t, err, "the fault is spent")
			require.Equal(t, 1, page.TotalCount)
			require.Equal(t, 2, b.srv.Stats().Lists)
			require.Zero(t, b.srv.Stats().Imports)
		})
	}

	t.Run("FailNextList is for lists", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.srv.FailNextList(1, 500, "SYSTEM_ERROR", "系统错误")
		_, _, err := b.importMember(t, testCard, importBody{OpenID: openid, OutRequestNo: "l1"})
		require.NoError(t, err)
	})
}

// TestListRequiresASignature: the list call is signed like any call, its
// query included.
func TestListRequiresASignature(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.Seed(testCard, openid)
	signed := listURL(b.srv.URL, openid)
	path := signed[len(b.srv.URL):]
	tests := []struct {
		name       string
		query      string // sent instead of the signed one, "" for none
		auth       bool
		wantStatus int
	}{
		{name: "signed by hand", auth: true, wantStatus: http.StatusOK},
		{name: "no authorization", auth: false, wantStatus: http.StatusUnauthorized},
		{name: "query changed after signing", query: "openid=oSomeoneElse", auth: true, wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := signed
			if tt.query != "" {
				sent = b.srv.URL + "/v3/marketing/membercard-open/user/cards?" + tt.query
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, sent, nil)
			require.NoError(t, err)
			if tt.auth {
				ts, sig := signRequest(b.keys.MchPrivateKey, http.MethodGet, path, "NONCE9", nil)
				req.Header.Set("Authorization", fmt.Sprintf(`WECHATPAY2-SHA256-RSA2048 mchid="%s",nonce_str="NONCE9",timestamp="%s",serial_no="%s",signature="%s"`, b.keys.MchID, ts, b.keys.MchCertSerial, sig))
			}

			resp, err := b.srv.Client().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()

			require.Equal(t, tt.wantStatus, resp.StatusCode)
			if tt.wantStatus == http.StatusOK {
				// No Wechatpay-Serial was sent: the public key signs.
				require.NoError(t, publicKeyValidator(b.keys).Validate(t.Context(), resp))
				return
			}
			requireUnsigned(t, b.keys, resp)
		})
	}
	require.Equal(t, 1, b.srv.Stats().Lists, "only the verified call counts")
}
