package wechatpay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
)

// CheckOpenID is the member the preflight asks about: no one, so the call
// changes nothing and WeChat lists no card.
const CheckOpenID = "oCardimportPreflightCheck0"

// CheckReport is what one harmless signed call to WeChat showed about the
// configuration (`worker check`).
type CheckReport struct {
	// Answered is false when no answer came (Err says why).
	Answered bool
	// Status is the HTTP status of the answer.
	Status int
	// SignatureAccepted is false when WeChat refused our signature (401);
	// Refusal then holds its code and message.
	SignatureAccepted bool
	Refusal           string
	// Verified is true when the answer's signature verified with our
	// key configuration; Serial names the key WeChat signed with.
	Verified  bool
	Serial    string
	VerifyErr error
	// ClockOffset is WeChat's clock (its Date header) minus ours, when
	// HasDate. WeChat refuses requests more than 5 minutes off.
	ClockOffset time.Duration
	HasDate     bool
	// RequestID is WeChat's Request-ID of the answer.
	RequestID string
	// Err is why no answer came.
	Err error
}

// OK reports whether every check passed.
func (r CheckReport) OK() bool {
	return r.Answered && r.SignatureAccepted && r.Verified && (!r.HasDate || r.ClockOffset.Abs() < maxClockOffset)
}

// maxClockOffset is the skew WeChat tolerates on a request's timestamp, and
// wechatpay-go on an answer's.
const maxClockOffset = 5 * time.Minute

// Check makes one signed call to WeChat that changes nothing (the list of
// cards of CheckOpenID) and reports whether WeChat accepted our signature,
// whether its answer verified and with which key, and how far our clock is
// from WeChat's.
func (c *Client) Check(ctx context.Context) CheckReport {
	q := url.Values{}
	q.Set("openid", CheckOpenID)
	if c.appID != "" {
		q.Set("appid", c.appID)
	}
	q.Set("offset", "0")
	q.Set("limit", "1")
	sent := time.Now()
	res, err := c.core.Get(ctx, c.baseURL+ListCardsPath+"?"+q.Encode())
	var r CheckReport
	if res == nil || res.Response == nil {
		r.Err = noAnswer(ctx, nil, err, CheckOpenID)
		return r
	}
	resp := res.Response
	defer resp.Body.Close()
	r.Answered, r.Status, r.RequestID = true, resp.StatusCode, resp.Header.Get("Request-ID")
	r.Serial = resp.Header.Get("Wechatpay-Serial")
	if d, derr := http.ParseTime(resp.Header.Get("Date")); derr == nil {
		// Date has whole seconds: compare with the middle of the call.
		mid := sent.Add(time.Since(sent) / 2)
		r.ClockOffset, r.HasDate = d.Sub(mid.Truncate(time.Second)), true
	}
	var apiErr *core.APIError
	isAPIErr := errors.As(err, &apiErr)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		r.Refusal = "401"
		if isAPIErr {
			r.Refusal = fmt.Sprintf("401 %s: %s", apiErr.Code, apiErr.Message)
		}
		r.VerifyErr = errors.New("WeChat cannot sign an answer to a request whose signature it refused")
		return r
	case resp.StatusCode >= 200 && resp.StatusCode <= 299 && err != nil:
		r.SignatureAccepted = true
		r.VerifyErr = c.verifyAgain(ctx, resp, err)
	case mustVerify(resp.StatusCode):
		r.SignatureAccepted = true
		r.VerifyErr = c.verify(ctx, resp)
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		r.SignatureAccepted = true
	default:
		// 429, 5xx, 3xx: WeChat did not judge the call.
		r.VerifyErr = fmt.Errorf("answer %d tells nothing; try again", resp.StatusCode)
		return r
	}
	r.Verified = r.VerifyErr == nil
	return r
}
