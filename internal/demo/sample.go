package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"

	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// The card the sample members join; the sandbox's refusal rules use other
// card ids (see wechatpaytest's doc).
const demoCard = "pDEMOcardMemberClub2026"

// sample is the built-in member file and what the sandbox must know in
// advance to answer it the way the demo promises.
type sample struct {
	// csv is a member file as a merchant's export would be, header included.
	csv []byte
	// seeded are openids that hold the card already, imported elsewhere.
	seeded []string
	// valid is how many rows enqueue accepts.
	valid int
}

// The sample's make-up, so the summary can be read against it.
const (
	sampleNew          = 250 // imported (a tenth with a code of their own)
	sampleMemberPrefix = 10  // already members by the o_member_ rule
	sampleSeeded       = 10  // already members, imported elsewhere before
	sampleNoTrade      = 15  // refused for good: no WeChat Pay trade in a year
	sampleUnknownCard  = 5   // refused for good: 404 NOT_FOUND
	sampleNoAuthCard   = 5   // refused for good: 403 NO_AUTH
	sampleCodeTaken    = 3   // refused for good: code held by another member
	sampleInvalid      = 2   // refused by enqueue, named on its stderr
)

// newSample builds the member file: deterministic, so every demo run
// tells the same story.
func newSample() sample {
	var s sample
	type member struct{ card, openid, code string }
	var rows []member
	row := func(card, openid, code string) { rows = append(rows, member{card, openid, code}) }
	for i := range sampleNew {
		code := ""
		if i%10 == 0 {
			code = fmt.Sprintf("8800%08d", i)
		}
		row(demoCard, openID("o", i), code)
	}
	for i := range sampleMemberPrefix {
		row(demoCard, openID(wechatpaytest.OpenIDPrefixMember, i), "")
	}
	for i := range sampleSeeded {
		id := openID("oS", i)
		s.seeded = append(s.seeded, id)
		row(demoCard, id, "")
	}
	for i := range sampleNoTrade {
		row(demoCard, openID(wechatpaytest.OpenIDPrefixNoTrade, i), "")
	}
	for i := range sampleUnknownCard {
		row(wechatpaytest.CardIDPrefixNotFound+"cardGone", openID("oU", i), "")
	}
	for i := range sampleNoAuthCard {
		row(wechatpaytest.CardIDPrefixNoAuth+"otherBrand", openID("oA", i), "")
	}
	for i := range sampleCodeTaken {
		// The codes of some new members, asked for by others: whichever
		// comes second is refused.
		row(demoCard, openID("oT", i), fmt.Sprintf("8800%08d", i*10))
	}
	// Mixed, as an export is, so that every kind of outcome shows from the
	// first seconds; a fixed seed keeps the story the same every run.
	rand.New(rand.NewPCG(2026, 1128)).Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	var b bytes.Buffer
	b.WriteString("card_id,openid,code,out_request_no\n")
	for i, r := range rows {
		fmt.Fprintf(&b, "%s,%s,%s,DEMO-20261128-%06d\n", r.card, r.openid, r.code, i+1)
	}
	s.valid = len(rows)
	n := len(rows)
	// Two rows a real export might carry; enqueue names their line and
	// field and goes on with the rest.
	fmt.Fprintf(&b, "%s,,,DEMO-20261128-%06d\n", demoCard, n+1)
	fmt.Fprintf(&b, "%s,%s,,DEMO 20261128 %06d\n", demoCard, openID("oX", 0), n+2)
	s.csv = b.Bytes()
	return s
}

// openID makes a 28-character openid that looks like WeChat's.
func openID(prefix string, i int) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s-%d", prefix, i))
	return (prefix + hex.EncodeToString(sum[:]))[:28]
}
