package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cardimport/cardimport/internal/logging"
)

// FormatPayload is the dashboard's view of a task payload: the JSON with
// every field whose name contains "openid" masked by logging.MaskOpenID,
// wherever it is nested. Bytes that are not a JSON object or array are
// never shown, since nothing can tell which part of them is personal; the
// view then says how many bytes there are.
func FormatPayload(_ string, payload []byte) string {
	return maskJSON(payload, "not an import payload")
}

// FormatResult is the dashboard's view of a task result. Import results
// ({"outcome","code"}) hold no openid, but results of other task types may,
// so they get the same treatment as payloads.
func FormatResult(_ string, result []byte) string {
	return maskJSON(result, "not a JSON result")
}

func maskJSON(data []byte, what string) string {
	if len(bytes.TrimSpace(data)) == 0 {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	// Keep numbers as written: a float64 would change long ids.
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		return opaque(data, what)
	}
	switch v.(type) {
	case map[string]any, []any:
	default:
		// A bare string or number may itself be an openid.
		return opaque(data, what)
	}
	out, err := json.Marshal(mask(v))
	if err != nil {
		return opaque(data, what)
	}
	return string(out)
}

func opaque(data []byte, what string) string {
	return fmt.Sprintf("<%d bytes, %s>", len(data), what)
}

// mask returns v with the values of openid fields masked.
func mask(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if isOpenIDKey(k) {
				t[k] = maskValue(val)
				continue
			}
			t[k] = mask(val)
		}
	case []any:
		for i, val := range t {
			t[i] = mask(val)
		}
	}
	return v
}

func maskValue(v any) any {
	if s, ok := v.(string); ok {
		return logging.MaskOpenID(s)
	}
	if v == nil {
		return nil
	}
	// A number, list or object under an openid key: hide it whole.
	return "****"
}

// isOpenIDKey matches "openid", "open_id", "OpenID", "member_openid" and
// the like.
func isOpenIDKey(k string) bool {
	k = strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(k))
	return strings.Contains(k, "openid")
}
