package wechatpay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/wechatpay-apiv3/wechatpay-go/core"

	"github.com/cardimport/cardimport/internal/logging"
)

// ImportRequest is one member to import.
type ImportRequest struct {
	CardID       string
	OpenID       string
	Code         string
	OutRequestNo string
}

// ImportResult is WeChat's answer to a successful import.
type ImportResult struct {
	// Code is the member's card code.
	Code string
	// RequestID is WeChat's Request-ID, for WeChat's support.
	RequestID string
}

type importBody struct {
	OpenID       string `json:"openid"`
	Code         string `json:"code,omitempty"`
	OutRequestNo string `json:"out_request_no"`
}

// ImportPath returns the path of the import API for a card.
func ImportPath(cardID string) string {
	return "/v3/marketing/membercard-open/cards/" + url.PathEscape(cardID) + "/users/import"
}

// Import imports a member's card. It returns the card code, or an *Error
// whose Kind says what to do next. Every answer that decides anything is
// verified (mustVerify); one that does not verify is KindUnverified.
func (c *Client) Import(ctx context.Context, req ImportRequest) (ImportResult, error) {
	reqBody := importBody{OpenID: req.OpenID, Code: req.Code, OutRequestNo: req.OutRequestNo}
	res, err := c.core.Post(ctx, c.baseURL+ImportPath(req.CardID), reqBody)
	if c.backupURL != "" && unreachable(err) && ctx.Err() == nil {
		// The request never reached WeChat; WeChat asks merchants to try
		// its backup host then. The same out_request_no keeps it safe.
		res, err = c.core.Post(ctx, c.backupURL+ImportPath(req.CardID), reqBody)
	}
	var body struct {
		Code string `json:"code"`
	}
	a, err := c.answer(ctx, res, err, req.OpenID, &body)
	if err != nil {
		return ImportResult{}, err
	}
	if a.status != http.StatusOK || body.Code == "" {
		// 202: accepted but not finished; retry with the same parameters.
		return ImportResult{}, &Error{Kind: KindTransient, StatusCode: a.status, RequestID: a.requestID,
			Message: "answer is not final (no card code)"}
	}
	return ImportResult{Code: body.Code, RequestID: a.requestID}, nil
}

// answered is what a verified 2xx carried besides its body.
type answered struct {
	status    int
	requestID string
}

// answer turns what wechatpay-go returned into a verified 2xx, decoding its
// JSON body into into, or an *Error. wechatpay-go verifies 2xx answers and
// returns refusals unverified; answer verifies those refusals that decide
// (mustVerify) with the same validator, and in auto-download mode gives an
// answer signed with an unknown serial a second chance after a download.
func (c *Client) answer(ctx context.Context, res *core.APIResult, err error, openid string, into any) (answered, error) {
	var resp *http.Response
	if res != nil {
		resp = res.Response
	}
	if resp != nil {
		defer resp.Body.Close()
	}
	var apiErr *core.APIError
	switch {
	case err != nil && errors.As(err, &apiErr) && resp != nil:
		return answered{}, c.refusal(ctx, resp, apiErr, openid)
	case err != nil && resp != nil && resp.StatusCode >= 200 && resp.StatusCode <= 299:
		// wechatpay-go returns a 2xx with an error only when the answer
		// failed verification.
		if verr := c.verifyAgain(ctx, resp, err); verr != nil {
			return answered{}, unverified(resp, verr)
		}
	case err != nil:
		return answered{}, noAnswer(ctx, resp, err, openid)
	}
	a := answered{status: resp.StatusCode, requestID: resp.Header.Get("Request-ID")}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err == nil && len(data) > 0 {
		err = json.Unmarshal(data, into)
	}
	if err != nil {
		return a, &Error{Kind: KindTransient, StatusCode: resp.StatusCode, RequestID: a.requestID,
			Err: fmt.Errorf("decode answer: %w", err)}
	}
	return a, nil
}

// refusal classifies a non-2xx answer. WeChat's message is kept with the
// member's openid masked, in case WeChat echoes it; headers and body are
// dropped.
func (c *Client) refusal(ctx context.Context, resp *http.Response, apiErr *core.APIError, openid string) error {
	e := &Error{
		StatusCode: apiErr.StatusCode,
		Code:       apiErr.Code,
		Message:    logging.MaskOpenIDIn(apiErr.Message, openid),
		RequestID:  resp.Header.Get("Request-ID"),
		Field:      detailField(apiErr.Detail),
		Kind:       classifyStatus(apiErr.StatusCode, apiErr.Code),
	}
	switch {
	case apiErr.StatusCode >= 300 && apiErr.StatusCode <= 399:
		// Only the host: a Location may carry anything, the openid included.
		e.Code, e.Message = "", "redirect not followed (to host "+locationHost(resp)+")"
	case e.Kind == KindSystemic:
		e.Hint = hintSignError
	}
	if mustVerify(apiErr.StatusCode) {
		if err := c.verify(ctx, resp); err != nil {
			// Whoever wrote it, WeChat did not sign it: it decides nothing.
			e.Kind, e.Err, e.Hint = KindUnverified, fmt.Errorf("refusal not verified: %w", err), ""
		}
	}
	return e
}

// verify checks the signature of an answer with the client's validator.
func (c *Client) verify(ctx context.Context, resp *http.Response) error {
	err := c.validator.Validate(ctx, resp)
	if err != nil && c.learn(ctx, resp) {
		err = c.validator.Validate(ctx, resp)
	}
	return err
}

// verifyAgain checks a 2xx that wechatpay-go found unverified (err) once
// more, when a download of the platform certificates taught us its key.
func (c *Client) verifyAgain(ctx context.Context, resp *http.Response, err error) error {
	if c.learn(ctx, resp) {
		return c.validator.Validate(ctx, resp)
	}
	return err
}

// learn reports whether, in auto-download mode, the answer's serial was not
// known and is now (after a download).
func (c *Client) learn(ctx context.Context, resp *http.Response) bool {
	if c.certs == nil {
		return false
	}
	serial := resp.Header.Get("Wechatpay-Serial")
	if _, known := c.certs.Get(ctx, serial); known {
		return false
	}
	return c.certs.learn(ctx, serial)
}

// unverified is the error for a 2xx whose signature does not verify:
// possibly forged, possibly one of WeChat's probes; the outcome is unknown.
func unverified(resp *http.Response, err error) *Error {
	return &Error{Kind: KindUnverified, StatusCode: resp.StatusCode, RequestID: resp.Header.Get("Request-ID"),
		Err: fmt.Errorf("answer signature does not verify: %w", err)}
}

// noAnswer is the error for a call that got no answer from WeChat: a
// network error, a timeout, our own cancellation.
func noAnswer(ctx context.Context, resp *http.Response, err error, openid string) *Error {
	e := &Error{Kind: KindTransient, Err: errors.New(logging.MaskOpenIDIn(err.Error(), openid))}
	if resp != nil {
		e.StatusCode = resp.StatusCode
		e.RequestID = resp.Header.Get("Request-ID")
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.Err = fmt.Errorf("%w: %w", ctxErr, e.Err)
	}
	return e
}

// locationHost is the host a redirect names, or "none".
func locationHost(resp *http.Response) string {
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || u.Host == "" {
		return "none"
	}
	return u.Hostname()
}

// unreachable reports whether a call failed to connect, so WeChat cannot
// have seen it.
func unreachable(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) || (errors.As(err, &opErr) && opErr.Op == "dial")
}

func detailField(detail any) string {
	if m, ok := detail.(map[string]any); ok {
		if f, ok := m["field"].(string); ok {
			return f
		}
	}
	return ""
}
