package wechatpaytest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// importRequest is the body of an import call.
type importRequest struct {
	OpenID       string `json:"openid"`
	Code         string `json:"code,omitempty"`
	OutRequestNo string `json:"out_request_no"`
}

// parseImport decodes and checks an import call against WeChat's published
// field limits. A refusal names the field as a JSON pointer and never
// repeats its value.
func parseImport(cardID string, body []byte) (importRequest, *answer) {
	if a := checkField("/card_id", "path", cardID, 1, 32); a != nil {
		return importRequest{}, a
	}
	var req importRequest
	if err := json.Unmarshal(body, &req); err != nil {
		a := paramError("", "body is not a JSON object with string fields openid, code and out_request_no", "body")
		return importRequest{}, &a
	}
	if a := checkField("/openid", "body", req.OpenID, 1, 128); a != nil {
		return importRequest{}, a
	}
	if a := checkField("/code", "body", req.Code, 0, 32); a != nil {
		return importRequest{}, a
	}
	if a := checkField("/out_request_no", "body", req.OutRequestNo, 1, 128); a != nil {
		return importRequest{}, a
	}
	if i := strings.IndexFunc(req.OutRequestNo, func(r rune) bool { return !isOutRequestNoRune(r) }); i >= 0 {
		a := paramError("/out_request_no", fmt.Sprintf("character at byte %d is not allowed: letters, digits and | _ * - only", i), "body")
		return importRequest{}, &a
	}
	return req, nil
}

// checkField applies a string(n) limit, counted in characters as WeChat
// counts them.
func checkField(field, location, v string, minLen, maxLen int) *answer {
	var issue string
	switch n := utf8.RuneCountInString(v); {
	case !utf8.ValidString(v):
		issue = "is not valid UTF-8"
	case n == 0 && minLen > 0:
		issue = "is required"
	case n > maxLen:
		issue = fmt.Sprintf("is %d characters long, at most %d allowed", n, maxLen)
	default:
		return nil
	}
	a := paramError(field, issue, location)
	return &a
}

func paramError(field, issue, location string) answer {
	a := refusal(http.StatusBadRequest, "PARAM_ERROR", "输入参数有误 (invalid "+strings.TrimPrefix(field, "/")+")")
	if field == "" {
		a.err.Message = "输入参数有误 (invalid body)"
	}
	a.err.Detail = &errorDetail{Field: field, Issue: issue, Location: location}
	return a
}

// isOutRequestNoRune is WeChat's rule for out_request_no, written here
// apart from tasks.Payload.Validate on purpose: the emulator stands for
// WeChat, so a mistake in our validation shows up as a refusal in tests
// instead of being shared by both sides.
func isOutRequestNoRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r == '|', r == '_', r == '*', r == '-':
		return true
	}
	return false
}
