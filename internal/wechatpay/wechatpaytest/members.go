package wechatpaytest

import "strings"

// memberKey is one member of one card.
type memberKey struct{ cardID, openID string }

// codeKey is one card code of one card.
type codeKey struct{ cardID, code string }

// record is what an out_request_no did the first time it imported.
type record struct {
	member    memberKey
	givenCode string // the code the caller asked for, "" when WeChat assigned one
	cardCode  string // the code the member holds
}

// members is WeChat's side of the story: who holds which card, and which
// out_request_no imported whom. Guarded by Emulator.mu.
type members struct {
	byRequestNo map[string]record
	holders     map[memberKey]string // card code of every member holding a card
	cardsOf     map[string][]string  // cards each openid holds, in the order they came
	imports     map[memberKey]int    // new imports per member
	codes       map[codeKey]bool     // card codes in use
	attempted   map[string]bool      // out_request_nos that reached the first-attempt fault
	authorized  map[string]bool      // NO_AUTH cards the merchant was given (AuthorizeCard)
	failures    map[string]int       // verified calls per out_request_no that did not end in a delivered 2xx (Failures)
}

func newMembers() members {
	return members{
		byRequestNo: map[string]record{},
		holders:     map[memberKey]string{},
		cardsOf:     map[string][]string{},
		imports:     map[memberKey]int{},
		codes:       map[codeKey]bool{},
		attempted:   map[string]bool{},
		authorized:  map[string]bool{},
		failures:    map[string]int{},
	}
}

// heldCode returns the code of the card a member holds. A member of the
// OpenIDPrefixMember rule holds every card: the first ask gives them a
// code, which every later one returns.
func (m *members) heldCode(k memberKey) (string, bool) {
	if code, ok := m.holders[k]; ok {
		return code, true
	}
	if strings.HasPrefix(k.openID, OpenIDPrefixMember) {
		return m.hold(k), true
	}
	return "", false
}

// hold records that a member holds a card they got elsewhere (Seed, the
// OpenIDPrefixMember rule) and returns its code: a new one, or the one
// they hold already.
func (m *members) hold(k memberKey) string {
	if code, ok := m.holders[k]; ok {
		return code
	}
	code := m.newCode(k.cardID)
	m.give(k, code)
	return code
}

// give records that a member holds a card under code.
func (m *members) give(k memberKey, code string) {
	m.holders[k] = code
	m.cardsOf[k.openID] = append(m.cardsOf[k.openID], k.cardID)
	m.codes[codeKey{cardID: k.cardID, code: code}] = true
}

// codeTaken reports whether a card code is already some member's.
func (m *members) codeTaken(cardID, code string) bool {
	return m.codes[codeKey{cardID: cardID, code: code}]
}

// newCode assigns a 12-digit card code no other member of the card has.
func (m *members) newCode(cardID string) string {
	for {
		code := randomString(digits, 12)
		if !m.codeTaken(cardID, code) {
			return code
		}
	}
}

// add imports a member under an out_request_no.
func (m *members) add(outRequestNo string, k memberKey, givenCode, cardCode string) {
	m.byRequestNo[outRequestNo] = record{member: k, givenCode: givenCode, cardCode: cardCode}
	m.give(k, cardCode)
	m.imports[k]++
}
