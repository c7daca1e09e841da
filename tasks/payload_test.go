package tasks_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/tasks"
)

func validPayload() tasks.Payload {
	return tasks.Payload{CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "1900000001-20261128-000001"}
}

func TestPayloadValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(p *tasks.Payload)
		want   string // "" = valid
	}{
		{name: "valid", modify: func(p *tasks.Payload) {}},
		{name: "valid with code", modify: func(p *tasks.Payload) { p.Code = "123456789012" }},
		{name: "all allowed out_request_no characters", modify: func(p *tasks.Payload) { p.OutRequestNo = "aZ09|_*-" }},
		{name: "card_id at limit", modify: func(p *tasks.Payload) { p.CardID = strings.Repeat("p", 32) }},
		{name: "openid at limit", modify: func(p *tasks.Payload) { p.OpenID = strings.Repeat("o", 128) }},
		{name: "out_request_no at limit", modify: func(p *tasks.Payload) { p.OutRequestNo = strings.Repeat("1", 128) }},
		{name: "card_id missing", modify: func(p *tasks.Payload) { p.CardID = "" }, want: "card_id: is required"},
		{name: "card_id too long", modify: func(p *tasks.Payload) { p.CardID = strings.Repeat("p", 33) }, want: "card_id: is 33 characters long, at most 32 allowed"},
		{name: "openid missing", modify: func(p *tasks.Payload) { p.OpenID = "" }, want: "openid: is required"},
		{name: "openid too long", modify: func(p *tasks.Payload) { p.OpenID = strings.Repeat("o", 129) }, want: "openid: is 129 characters long, at most 128 allowed"},
		{name: "openid padded", modify: func(p *tasks.Payload) { p.OpenID = " o123 " }, want: "openid: has leading or trailing white space"},
		{name: "openid bad utf-8", modify: func(p *tasks.Payload) { p.OpenID = "o\xff" }, want: "openid: is not valid UTF-8"},
		{name: "code too long", modify: func(p *tasks.Payload) { p.Code = strings.Repeat("1", 33) }, want: "code: is 33 characters long, at most 32 allowed"},
		{name: "code control character", modify: func(p *tasks.Payload) { p.Code = "12\n34" }, want: "code: contains a control character"},
		{name: "out_request_no missing", modify: func(p *tasks.Payload) { p.OutRequestNo = "" }, want: "out_request_no: is required"},
		{name: "out_request_no too long", modify: func(p *tasks.Payload) { p.OutRequestNo = strings.Repeat("1", 129) }, want: "out_request_no: is 129 characters long, at most 128 allowed"},
		{name: "out_request_no bad character", modify: func(p *tasks.Payload) { p.OutRequestNo = "2026/11/28" }, want: `out_request_no: character '/' at position 5 is not allowed (letters, digits and | _ * - only)`},
		{name: "out_request_no non-ASCII letter", modify: func(p *tasks.Payload) { p.OutRequestNo = "会员1" }, want: `out_request_no: character '会' at position 1 is not allowed (letters, digits and | _ * - only)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := validPayload()
			tt.modify(&p)
			err := p.Validate()
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, tasks.ErrInvalidPayload)
			var fe *tasks.FieldError
			require.True(t, errors.As(err, &fe))
			require.True(t, strings.HasPrefix(tt.want, fe.Field+":"), "field %q named first", fe.Field)
		})
	}
}

func TestNewImportTask(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		task, err := tasks.NewImportTask(validPayload())
		require.NoError(t, err)
		require.Equal(t, tasks.TypeImport, task.Type())
		got, err := tasks.DecodePayload(task.Payload())
		require.NoError(t, err)
		require.Equal(t, validPayload(), got)
		require.JSONEq(t, `{"card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","out_request_no":"1900000001-20261128-000001"}`, string(task.Payload()))
	})
	t.Run("invalid payload refused", func(t *testing.T) {
		p := validPayload()
		p.OpenID = ""
		_, err := tasks.NewImportTask(p)
		require.EqualError(t, err, "openid: is required")
	})
	t.Run("bad options named", func(t *testing.T) {
		_, err := tasks.NewImportTask(validPayload(), tasks.WithQueue(""))
		require.EqualError(t, err, "queue: must not be empty")
		_, err = tasks.NewImportTask(validPayload(), tasks.WithTimeout(0))
		require.EqualError(t, err, "timeout: must be positive, got 0s")
		// Too short to fit a call that fails over to WeChat's backup host:
		// asynq would cut it short and count the timeout itself.
		err = tasks.ValidateOptions(tasks.WithTimeout(tasks.MinTimeout - time.Second))
		var oe *tasks.OptionError
		require.ErrorAs(t, err, &oe)
		require.Equal(t, "timeout", oe.Option)
		require.Equal(t, "must be at least 28s to fit a call to WeChat Pay, got 27s", oe.Problem)
		require.NoError(t, tasks.ValidateOptions(tasks.WithTimeout(tasks.MinTimeout)))
		_, err = tasks.NewImportTask(validPayload(), tasks.WithMaxRetry(-1))
		require.EqualError(t, err, "max-retry: must not be negative, got -1")
	})
}

func TestDecodePayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want string
	}{
		{name: "not json", data: "hello", want: "invalid payload: not a JSON import payload: invalid character 'h' looking for beginning of value"},
		{name: "wrong type", data: `{"openid":5}`, want: "invalid payload: not a JSON import payload: json: cannot unmarshal number into Go struct field Payload.openid of type string"},
		{name: "missing field", data: `{"card_id":"p1","openid":"o1"}`, want: "out_request_no: is required"},
		{name: "unknown fields ignored", data: `{"card_id":"p1","openid":"o1","out_request_no":"n1","campaign":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tasks.DecodePayload([]byte(tt.data))
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.want)
			require.ErrorIs(t, err, tasks.ErrInvalidPayload)
		})
	}
}

func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte(`{"card_id":"p1","openid":"o1","out_request_no":"n1"}`))
	f.Add([]byte(`{"card_id":"p1","openid":"o1","code":"c","out_request_no":"n|_*-"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := tasks.DecodePayload(data)
		if err != nil {
			require.ErrorIs(t, err, tasks.ErrInvalidPayload)
			return
		}
		require.NoError(t, p.Validate())
		task, err := tasks.NewImportTask(p)
		require.NoError(t, err)
		back, err := tasks.DecodePayload(task.Payload())
		require.NoError(t, err)
		require.Equal(t, p, back)
	})
}

func TestResultRoundTrip(t *testing.T) {
	t.Parallel()
	r, err := tasks.DecodeResult([]byte(`{"outcome":"imported","code":"123456789012"}`))
	require.NoError(t, err)
	require.Equal(t, tasks.Result{Outcome: tasks.OutcomeImported, Code: "123456789012"}, r)
	_, err = tasks.DecodeResult([]byte(`{"outcome":"lost"}`))
	require.EqualError(t, err, `decode result: unknown outcome "lost"`)
}

var _ asynq.Handler = (*tasks.Handler)(nil)
