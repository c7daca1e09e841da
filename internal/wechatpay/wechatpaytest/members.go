package wechatpaytest

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
	holders     map[memberKey]string // card code, "" for Seed members
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
		imports:     map[memberKey]int{},
		codes:       map[codeKey]bool{},
		attempted:   map[string]bool{},
		authorized:  map[string]bool{},
		failures:    map[string]int{},
	}
}

// holds reports whether a member already has the card.
func (m *members) holds(k memberKey) bool {
	_, ok := m.holders[k]
	return ok
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
	m.holders[k] = cardCode
	m.imports[k]++
	m.codes[codeKey{cardID: k.cardID, code: cardCode}] = true
}
