package wechatpaytest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// MaxListLimit is the largest page the list call serves; a member holding
// more cards must be paged through.
const MaxListLimit = 20

// listResponse is the body of the list call.
type listResponse struct {
	Data       []heldCard `json:"data"`
	TotalCount int        `json:"total_count"`
	Offset     int        `json:"offset"`
	Limit      int        `json:"limit"`
}

// heldCard is one card a member holds.
type heldCard struct {
	CardID string `json:"card_id"`
	Code   string `json:"code"`
}

// listQuery is a parsed list call.
type listQuery struct {
	openID        string
	offset, limit int
}

// handleList answers GET /v3/marketing/membercard-open/user/cards: which
// cards a member holds, a page at a time. The request is signed like any
// call (the signature covers path and query, the body is empty) and the
// answer is signed.
func (e *Emulator) handleList(w http.ResponseWriter, r *http.Request) {
	if _, ok := e.admit(w, r); !ok {
		return
	}
	e.reply(w, r, e.listCards(r.URL.Query()))
}

// listCards decides the answer to a verified list call, in the order the
// package documentation lists.
func (e *Emulator) listCards(q url.Values) answer {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stats.Lists++
	if e.faults.outage != nil {
		return *e.faults.outage
	}
	if a, ok := takeQueued(&e.faults.listFailures); ok {
		return a
	}
	lq, refused := parseList(q)
	if refused != nil {
		return *refused
	}
	// Sorted by card id: the same member gets the same pages every time,
	// whatever order the cards came in.
	cards := slices.Sorted(slices.Values(e.members.cardsOf[lq.openID]))
	page := []heldCard{}
	if start := lq.offset * lq.limit; lq.offset < len(cards) && start < len(cards) {
		for _, cardID := range cards[start:min(start+lq.limit, len(cards))] {
			page = append(page, heldCard{CardID: cardID, Code: e.members.holders[memberKey{cardID: cardID, openID: lq.openID}]})
		}
	}
	body, _ := json.Marshal(listResponse{Data: page, TotalCount: len(cards), Offset: lq.offset, Limit: lq.limit}) // strings and ints: cannot fail
	return answer{status: http.StatusOK, body: body, forge: e.faults.take(&e.faults.listForge)}
}

// parseList checks a list call's query: openid required (string(128)),
// appid optional (string(32)), offset the page number from 0 (default 0),
// limit 1 to MaxListLimit (default MaxListLimit).
func parseList(q url.Values) (listQuery, *answer) {
	lq := listQuery{openID: q.Get("openid"), limit: MaxListLimit}
	if a := checkField("/openid", "query", lq.openID, 1, 128); a != nil {
		return listQuery{}, a
	}
	if a := checkField("/appid", "query", q.Get("appid"), 0, 32); a != nil {
		return listQuery{}, a
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			a := paramError("/offset", "is not a page number (an integer from 0)", "query")
			return listQuery{}, &a
		}
		lq.offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxListLimit {
			a := paramError("/limit", "must be an integer from 1 to "+strconv.Itoa(MaxListLimit), "query")
			return listQuery{}, &a
		}
		lq.limit = n
	}
	return lq, nil
}
