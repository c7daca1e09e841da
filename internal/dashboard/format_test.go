package dashboard_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/dashboard"
	"github.com/cardimport/cardimport/tasks"
)

const openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"

func TestFormatPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		want    string
	}{
		{
			name:    "import payload",
			payload: `{"card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"` + openid + `","out_request_no":"1900000001-20261128-000001"}`,
			want:    `{"card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"oUpF****eS6o","out_request_no":"1900000001-20261128-000001"}`,
		},
		{
			name:    "other spellings and nesting",
			payload: `{"members":[{"OpenID":"` + openid + `","n":12345678901234567890}],"open_id":"` + openid + `","member_openid":42}`,
			want:    `{"member_openid":"****","members":[{"OpenID":"oUpF****eS6o","n":12345678901234567890}],"open_id":"oUpF****eS6o"}`,
		},
		{
			name:    "short openid hidden whole",
			payload: `{"openid":"o123"}`,
			want:    `{"openid":"****"}`,
		},
		{name: "not JSON", payload: openid, want: "<28 bytes, not an import payload>"},
		{name: "a bare JSON string", payload: `"` + openid + `"`, want: "<30 bytes, not an import payload>"},
		{name: "two JSON values", payload: `{} "` + openid + `"`, want: "<33 bytes, not an import payload>"},
		{name: "truncated JSON", payload: `{"openid":"` + openid, want: "<39 bytes, not an import payload>"},
		{name: "empty", payload: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dashboard.FormatPayload(tasks.TypeImport, []byte(tt.payload))
			require.Equal(t, tt.want, got)
			require.NotContains(t, got, openid)
		})
	}
}

func TestFormatResult(t *testing.T) {
	t.Parallel()
	require.Equal(t, `{"code":"123456789012","outcome":"imported"}`,
		dashboard.FormatResult("", []byte(`{"outcome":"imported","code":"123456789012"}`)))
	require.Equal(t, `{"openid":"oUpF****eS6o"}`, dashboard.FormatResult("", []byte(`{"openid":"`+openid+`"}`)))
	require.Equal(t, "<3 bytes, not a JSON result>", dashboard.FormatResult("", []byte("\x00\x01\x02")))
}

// FuzzFormatPayload: whatever a producer put in a task, the dashboard's
// view is empty, an opaque size, or JSON in which an import payload's
// openid is masked.
func FuzzFormatPayload(f *testing.F) {
	f.Add([]byte(`{"card_id":"c","openid":"` + openid + `","out_request_no":"n"}`))
	f.Add([]byte(openid))
	f.Add([]byte(`[{"openid":["` + openid + `"]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		got := dashboard.FormatPayload(tasks.TypeImport, data)
		if got == "" || strings.HasPrefix(got, "<") {
			return
		}
		require.True(t, json.Valid([]byte(got)), "view is JSON: %q", got)
		var in, out tasks.Payload
		if json.Unmarshal(data, &in) != nil || len([]rune(in.OpenID)) <= 12 {
			return
		}
		require.NoError(t, json.Unmarshal([]byte(got), &out))
		require.NotEqual(t, in.OpenID, out.OpenID)
		require.Contains(t, out.OpenID, "****")
	})
}
