package wechatpay

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ListCardsPath is the path of the API that lists a member's cards.
const ListCardsPath = "/v3/marketing/membercard-open/user/cards"

// ListCardsPageSize is the most cards WeChat lists in one page.
const ListCardsPageSize = 20

// maxCardPages bounds the paging of one member's cards: 50 pages of 20 is
// a thousand cards of one brand, far more than any member holds; an answer
// that keeps promising more is not followed for ever.
const maxCardPages = 50

// ListCardsRequest asks for one page of the cards a member holds.
type ListCardsRequest struct {
	OpenID string
	// Page is the page number from 0 (WeChat's offset).
	Page int
}

// HeldCard is one card a member holds.
type HeldCard struct {
	CardID string `json:"card_id"`
	Code   string `json:"code"`
}

// CardPage is one verified page of a member's cards.
type CardPage struct {
	Cards []HeldCard
	// Total is how many cards the member holds in all (total_count).
	Total int
	// RequestID is WeChat's Request-ID, for WeChat's support.
	RequestID string
}

// ListCards asks WeChat for one page of the cards a member holds
// (GET /v3/marketing/membercard-open/user/cards). The answer is verified
// like an import's; an error is an *Error of the same kinds.
func (c *Client) ListCards(ctx context.Context, req ListCardsRequest) (CardPage, error) {
	q := url.Values{}
	q.Set("openid", req.OpenID)
	if c.appID != "" {
		q.Set("appid", c.appID)
	}
	q.Set("offset", strconv.Itoa(req.Page))
	q.Set("limit", strconv.Itoa(ListCardsPageSize))
	res, err := c.core.Get(ctx, c.baseURL+ListCardsPath+"?"+q.Encode())
	var body struct {
		Data       []HeldCard `json:"data"`
		TotalCount *int       `json:"total_count"`
	}
	a, err := c.answer(ctx, res, err, req.OpenID, &body)
	if err != nil {
		return CardPage{}, err
	}
	if body.TotalCount == nil {
		return CardPage{}, &Error{Kind: KindTransient, StatusCode: a.status, RequestID: a.requestID,
			Message: "card list has no total_count"}
	}
	return CardPage{Cards: body.Data, Total: *body.TotalCount, RequestID: a.requestID}, nil
}

// CardLister lists a member's cards a page at a time. *Client is one; the
// guard wraps it with the shared rate limit and circuit breaker.
type CardLister interface {
	ListCards(ctx context.Context, req ListCardsRequest) (CardPage, error)
}

// Holding is what WeChat's list says of one member and one card.
type Holding struct {
	// Held is true when the card is among the member's cards.
	Held bool
	// Code is the member's code of the card, when Held.
	Code string
	// RequestID is the Request-ID of the answer that settled it.
	RequestID string
}

// FindCard pages through a member's cards until cardID shows up or every
// card (total_count) was seen. It is the evidence that a refused import was
// a member who already holds the card. Any failure to list, whatever its
// kind, leaves the question open: the error is an *Error that is never
// KindPermanent (a refusal of the list is retried, not settled on), so the
// import is tried again rather than dead-lettered.
func FindCard(ctx context.Context, l CardLister, openid, cardID string) (Holding, error) {
	seen := 0
	for page := 0; page < maxCardPages; page++ {
		p, err := l.ListCards(ctx, ListCardsRequest{OpenID: openid, Page: page})
		if err != nil {
			return Holding{}, listFailed(err)
		}
		for _, card := range p.Cards {
			if card.CardID == cardID {
				return Holding{Held: true, Code: card.Code, RequestID: p.RequestID}, nil
			}
		}
		seen += len(p.Cards)
		if seen >= p.Total || len(p.Cards) == 0 {
			return Holding{RequestID: p.RequestID}, nil
		}
	}
	return Holding{}, &Error{Kind: KindTransient, Message: fmt.Sprintf("card list did not end within %d pages", maxCardPages)}
}

// listFailed keeps the kind of a failed list call, except that a refusal
// becomes transient: the list is asked again, the member not settled.
func listFailed(err error) error {
	var e *Error
	if !errors.As(err, &e) {
		return &Error{Kind: KindTransient, Err: fmt.Errorf("list cards: %w", err)}
	}
	cp := *e
	if cp.Kind == KindPermanent {
		cp.Kind = KindTransient
	}
	cp.Message = strings.TrimSuffix("list cards: "+cp.Message, ": ")
	return &cp
}
