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
// whose Kind says what to do next. WeChat's answer is verified; an answer
// that does not verify is KindTransient, as the outcome is unknown.
func (c *Client) Import(ctx context.Context, req ImportRequest) (ImportResult, error) {
	reqBody := importBody{OpenID: req.OpenID, Code: req.Code, OutRequestNo: req.OutRequestNo}
	res, err := c.core.Post(ctx, c.baseURL+ImportPath(req.CardID), reqBody)
	if c.backupURL != "" && unreachable(err) && ctx.Err() == nil {
		// The request never reached WeChat; WeChat asks merchants to try
		// its backup host then. The same out_request_no keeps it safe.
		res, err = c.core.Post(ctx, c.backupURL+ImportPath(req.CardID), reqBody)
	}
	if res != nil && res.Response != nil {
		defer res.Response.Body.Close()
	}
	if err != nil {
		return ImportResult{}, classify(ctx, res, err, req.OpenID)
	}
	requestID := res.Response.Header.Get("Request-ID")
	if res.Response.StatusCode != http.StatusOK {
		// 202: accepted but not finished; retry with the same parameters.
		return ImportResult{}, &Error{Kind: KindTransient, StatusCode: res.Response.StatusCode, RequestID: requestID,
			Message: "answer is not final"}
	}
	var body struct {
		Code string `json:"code"`
	}
	data, err := io.ReadAll(io.LimitReader(res.Response.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(data, &body)
	}
	if err != nil || body.Code == "" {
		if err == nil {
			err = errors.New("answer has no card code")
		}
		return ImportResult{}, &Error{Kind: KindTransient, StatusCode: http.StatusOK, RequestID: requestID,
			Err: fmt.Errorf("decode answer: %w", err)}
	}
	return ImportResult{Code: body.Code, RequestID: requestID}, nil
}

// classify turns a failed call into an *Error. WeChat's message is kept with
// the member's openid masked, in case WeChat echoes it; headers and body are
// dropped.
func classify(ctx context.Context, res *core.APIResult, err error, openid string) error {
	var apiErr *core.APIError
	if errors.As(err, &apiErr) {
		e := &Error{
			StatusCode: apiErr.StatusCode,
			Code:       apiErr.Code,
			Message:    logging.MaskOpenIDIn(apiErr.Message, openid),
			RequestID:  apiErr.Header.Get("Request-ID"),
			Field:      detailField(apiErr.Detail),
		}
		e.Kind = classifyStatus(e.StatusCode, e.Code, apiErr.Message)
		if e.Kind == KindSystemic {
			e.Hint = hintSignError
		}
		return e
	}
	e := &Error{Kind: KindTransient, Err: errors.New(logging.MaskOpenIDIn(err.Error(), openid))}
	if res != nil && res.Response != nil {
		e.StatusCode = res.Response.StatusCode
		e.RequestID = res.Response.Header.Get("Request-ID")
		if e.StatusCode >= 200 && e.StatusCode <= 299 {
			// wechatpay-go returns a 2xx with an error only when the
			// answer failed verification: possibly forged, possibly one of
			// WeChat's probes; either way the outcome is unknown.
			e.Err = fmt.Errorf("answer signature does not verify: %w", e.Err)
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		e.Err = fmt.Errorf("%w: %w", ctxErr, e.Err)
	}
	return e
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
