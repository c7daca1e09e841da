package wechatpaytest

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Prefixes that trigger WeChat's permanent refusals, so that tests and
// sandbox runs can produce each one on purpose.
const (
	// CardIDPrefixNotFound: a card_id starting with it does not exist
	// (404 NOT_FOUND).
	CardIDPrefixNotFound = "pUNKNOWN"
	// CardIDPrefixNoAuth: a card_id starting with it belongs to another
	// merchant (403 NO_AUTH).
	CardIDPrefixNoAuth = "pNOAUTH"
	// OpenIDPrefixNoTrade: an openid starting with it has had no WeChat Pay
	// trade with the merchant in the past year (400 INVALID_REQUEST
	// MessageNoTrade).
	OpenIDPrefixNoTrade = "o_notrade_"
	// OpenIDPrefixMember: an openid starting with it already holds every card
	// (400 INVALID_REQUEST MessageAlreadyMember). Its code for a card is
	// assigned the first time an import or HeldCode names the card, and
	// from then on the list call returns it.
	OpenIDPrefixMember = "o_member_"
)

// Messages of the 400 INVALID_REQUEST refusals.
const (
	// MessageAlreadyMember is WeChat's answer when the member already holds
	// the card: the message the brand card-member APIs document, since the
	// import API names none. Other refusals share its code, so only the
	// list call, not this text, tells a client the member holds the card.
	MessageAlreadyMember = "用户已有已生效的会员卡"
	// MessageNoTrade is WeChat's answer when the member has had no WeChat
	// Pay trade with the merchant in the past year.
	MessageNoTrade = "用户近一年无微信支付交易，不满足导入条件"
	// MessageOutRequestNoReused refuses an out_request_no that imported
	// another member, card or code before.
	MessageOutRequestNoReused = "out_request_no 已使用，参数不一致 (out_request_no reused with other parameters)"
	// MessageCodeTaken refuses a code another member of the card holds.
	MessageCodeTaken = "code 已被其他用户占用 (code held by another member)"
)

// importResponse is the body of a successful import.
type importResponse struct {
	Code string `json:"code"`
}

func (e *Emulator) handleImport(w http.ResponseWriter, r *http.Request) {
	body, ok := e.admit(w, r)
	if !ok {
		return
	}
	a := e.importMember(r.PathValue("card_id"), body)
	e.reply(w, r, a)
	if a.status/100 != 2 || a.status == http.StatusAccepted || r.Context().Err() != nil {
		e.countFailure(body)
	}
}

// countFailure records a verified call that did not import with an answer
// its caller received: a 5xx, a 202, a refusal, or an answer written after
// the caller had hung up (a timeout on its side, a killed process).
func (e *Emulator) countFailure(body []byte) {
	var req struct {
		OutRequestNo string `json:"out_request_no"`
	}
	if json.Unmarshal(body, &req) != nil || req.OutRequestNo == "" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.members.failures[req.OutRequestNo]++
}

// importMember decides the answer to a verified import call, in the order
// the package documentation lists, and changes the state it implies. It
// holds the lock throughout, so concurrent retries of one out_request_no
// cannot both import.
func (e *Emulator) importMember(cardID string, body []byte) answer {
	e.mu.Lock()
	defer e.mu.Unlock()
	if a, ok := e.faults.takeIntercept(body); ok {
		return a
	}
	if e.faults.outage != nil {
		return *e.faults.outage
	}
	if a, ok := takeQueued(&e.faults.failures); ok {
		return a
	}
	if e.faults.take(&e.faults.accept202) {
		return answer{status: http.StatusAccepted, forge: e.faults.take(&e.faults.forge)}
	}
	req, refused := parseImport(cardID, body)
	if refused != nil {
		return *refused
	}
	if e.firstAttemptFault(req.OutRequestNo) {
		return refusal(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误，请使用相同参数稍后重新调用 (first attempt fault)")
	}
	member := memberKey{cardID: cardID, openID: req.OpenID}
	if rec, seen := e.members.byRequestNo[req.OutRequestNo]; seen {
		if rec.member != member || rec.givenCode != req.Code {
			return refusal(http.StatusBadRequest, "INVALID_REQUEST", MessageOutRequestNoReused)
		}
		e.stats.Replays++
		return e.imported(rec.cardCode)
	}
	if a, ok := permanentRule(member, e.members.authorized[cardID]); ok {
		return a
	}
	if _, holds := e.members.heldCode(member); holds {
		return refusal(http.StatusBadRequest, "INVALID_REQUEST", MessageAlreadyMember)
	}
	cardCode := req.Code
	if cardCode == "" {
		cardCode = e.members.newCode(cardID)
	} else if e.members.codeTaken(cardID, cardCode) {
		return refusal(http.StatusBadRequest, "INVALID_REQUEST", MessageCodeTaken)
	}
	e.members.add(req.OutRequestNo, member, req.Code, cardCode)
	e.stats.Imports++
	if e.faults.take(&e.faults.lose) {
		return refusal(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误，请使用相同参数稍后重新调用 (answer lost)")
	}
	return e.imported(cardCode)
}

// imported is the 200 answer for a member holding cardCode.
func (e *Emulator) imported(cardCode string) answer {
	body, _ := json.Marshal(importResponse{Code: cardCode}) // a string: cannot fail
	return answer{status: http.StatusOK, body: body, forge: e.faults.take(&e.faults.forge)}
}

// permanentRule applies the refusals the prefixes trigger; authorized
// lifts NO_AUTH (AuthorizeCard).
func permanentRule(m memberKey, authorized bool) (answer, bool) {
	switch {
	case strings.HasPrefix(m.cardID, CardIDPrefixNotFound):
		return refusal(http.StatusNotFound, "NOT_FOUND", "卡券不存在 (no such card)"), true
	case strings.HasPrefix(m.cardID, CardIDPrefixNoAuth) && !authorized:
		return refusal(http.StatusForbidden, "NO_AUTH", "商户无权限操作该卡券 (merchant is not the card's creator)"), true
	case strings.HasPrefix(m.openID, OpenIDPrefixNoTrade):
		return refusal(http.StatusBadRequest, "INVALID_REQUEST", MessageNoTrade), true
	}
	return answer{}, false
}

// AuthorizeCard gives the merchant the right to import into cardID, a card
// refused with 403 NO_AUTH because its id starts with CardIDPrefixNoAuth,
// as when the card's creator authorizes the merchant: from then on its
// imports go through. It lets a test fix the cause of dead letters and
// replay them.
func (e *Emulator) AuthorizeCard(cardID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.members.authorized[cardID] = true
}

// Seed records that a member already holds a card, imported elsewhere,
// and returns the member's card code (12 digits, unique within the card;
// the code they hold already if they did). Importing them answers
// MessageAlreadyMember and the list call returns the card with this code.
// Seeded members do not count in ImportCount or Members.
func (e *Emulator) Seed(cardID, openid string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.members.hold(memberKey{cardID: cardID, openID: openid})
}

// SeedCards seeds a member holding every card in cardIDs, as Seed does for
// one: e.g. 24 other cards of the brand, so that with the one imported the
// list call needs two pages of 20.
func (e *Emulator) SeedCards(openid string, cardIDs ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, cardID := range cardIDs {
		e.members.hold(memberKey{cardID: cardID, openID: openid})
	}
}

// HeldCode returns the code of the card cardID that openid holds, whether
// imported, seeded or held by the OpenIDPrefixMember rule (the code is
// assigned on the first ask), so that a test can compare it with what the
// worker stored. ok is false when the member does not hold the card.
func (e *Emulator) HeldCode(cardID, openid string) (code string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.members.heldCode(memberKey{cardID: cardID, openID: openid})
}
