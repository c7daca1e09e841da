package tasks_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
		{name: "code control character", modify: func(p *tasks.Payload) { p.Code = "12\n34" }, want: `code: character '\n' at position 3 is not allowed (letters, digits and ASCII punctuation only)`},
		{name: "code with every ASCII punctuation", modify: func(p *tasks.Payload) { p.Code = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" }},
		{name: "code with a space", modify: func(p *tasks.Payload) { p.Code = "12 34" }, want: `code: character ' ' at position 3 is not allowed (letters, digits and ASCII punctuation only)`},
		{name: "code non-ASCII digit", modify: func(p *tasks.Payload) { p.Code = "12３4" }, want: `code: character '３' at position 3 is not allowed (letters, digits and ASCII punctuation only)`},
		{name: "code DEL", modify: func(p *tasks.Payload) { p.Code = "12\x7f" }, want: `code: character '\x7f' at position 3 is not allowed (letters, digits and ASCII punctuation only)`},
		// card_id goes into the API path: "." and ".." would be dot
		// segments, the path /cards/../users/import.
		{name: "card_id dot-dot", modify: func(p *tasks.Payload) { p.CardID = ".." }, want: `card_id: character '.' at position 1 is not allowed (letters, digits, _ and - only)`},
		{name: "card_id dot", modify: func(p *tasks.Payload) { p.CardID = "." }, want: `card_id: character '.' at position 1 is not allowed (letters, digits, _ and - only)`},
		{name: "card_id slash", modify: func(p *tasks.Payload) { p.CardID = "p1/../x" }, want: `card_id: character '/' at position 3 is not allowed (letters, digits, _ and - only)`},
		{name: "card_id percent", modify: func(p *tasks.Payload) { p.CardID = "p%2e" }, want: `card_id: character '%' at position 2 is not allowed (letters, digits, _ and - only)`},
		{name: "card_id non-ASCII letter", modify: func(p *tasks.Payload) { p.CardID = "pé" }, want: `card_id: character 'é' at position 2 is not allowed (letters, digits, _ and - only)`},
		{name: "card_id all allowed characters", modify: func(p *tasks.Payload) { p.CardID = "azAZ09_-" }},
		{name: "openid all allowed characters", modify: func(p *tasks.Payload) { p.OpenID = "azAZ09_-" }},
		{name: "openid inner space", modify: func(p *tasks.Payload) { p.OpenID = "oUpF8 uMuAJO" }, want: `openid: character ' ' at position 6 is not allowed (letters, digits, _ and - only)`},
		{name: "openid zero-width space", modify: func(p *tasks.Payload) { p.OpenID = "oUpF8\u200buMuAJO" }, want: `openid: character '\u200b' at position 6 is not allowed (letters, digits, _ and - only)`},
		{name: "openid byte order mark", modify: func(p *tasks.Payload) { p.OpenID = "\ufeffoUpF8uMuAJO" }, want: `openid: character '\ufeff' at position 1 is not allowed (letters, digits, _ and - only)`},
		{name: "openid replacement character", modify: func(p *tasks.Payload) { p.OpenID = "o\ufffd" }, want: `openid: character '�' at position 2 is not allowed (letters, digits, _ and - only)`},
		{name: "openid fullwidth letter", modify: func(p *tasks.Payload) { p.OpenID = "oＡ1" }, want: `openid: character 'Ａ' at position 2 is not allowed (letters, digits, _ and - only)`},
		{name: "openid dot", modify: func(p *tasks.Payload) { p.OpenID = "o.1" }, want: `openid: character '.' at position 2 is not allowed (letters, digits, _ and - only)`},
		{name: "openid escape sequence", modify: func(p *tasks.Payload) { p.OpenID = "o\x1b[31m" }, want: `openid: character '\x1b' at position 2 is not allowed (letters, digits, _ and - only)`},
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
		// field is the field a *FieldError names, when one does.
		field string
		want  string
	}{
		{name: "not json", data: "hello", want: "invalid payload: not a JSON import payload: invalid character 'h' looking for beginning of value"},
		{name: "wrong type", data: `{"openid":5}`, want: "openid: is a number, want a string"},
		{name: "not an object", data: `["p1","o1","n1"]`, want: "invalid payload: is an array, want a JSON object"},
		{name: "missing field", data: `{"card_id":"p1","openid":"o1"}`, want: "out_request_no: is required"},
		{name: "null is absent", data: `{"card_id":"p1","openid":null,"out_request_no":"n1"}`, want: "openid: is required"},
		{name: "unknown fields ignored", data: `{"card_id":"p1","openid":"o1","out_request_no":"n1","campaign":"x"}`},
		{name: "escapes decoded", data: `{"card_id":"p\u0031","openid":"o\u005f1","out_request_no":"n1"}`},
		{name: "field names in another case", data: `{"Card_ID":"p1","OPENID":"o1","out_request_no":"n1"}`},
		// encoding/json turns a lone surrogate into U+FFFD and lets the
		// last of two equal keys win: either way the worker would import
		// a member other than the one enqueued.
		{name: "lone high surrogate", data: `{"card_id":"p1","openid":"o\ud800x","out_request_no":"n1"}`, field: "openid", want: `openid: has an unpaired UTF-16 surrogate escape (\ud800)`},
		{name: "lone low surrogate", data: `{"card_id":"p1","openid":"o\uDC00","out_request_no":"n1"}`, field: "openid", want: `openid: has an unpaired UTF-16 surrogate escape (\udc00)`},
		{name: "high surrogate before another escape", data: `{"card_id":"p1","openid":"o\ud800\u0041","out_request_no":"n1"}`, field: "openid", want: `openid: has an unpaired UTF-16 surrogate escape (\ud800)`},
		{name: "surrogate at the end", data: `{"card_id":"p1","openid":"o","out_request_no":"n1\ud83d"}`, field: "out_request_no", want: `out_request_no: has an unpaired UTF-16 surrogate escape (\ud83d)`},
		{name: "paired surrogates are a character", data: `{"card_id":"p1","openid":"o\ud83d\ude00","out_request_no":"n1"}`, field: "openid", want: `openid: character '😀' at position 2 is not allowed (letters, digits, _ and - only)`},
		{name: "escaped backslash before u", data: `{"card_id":"p1","openid":"o\\ud800","out_request_no":"n1"}`, field: "openid", want: `openid: character '\\' at position 2 is not allowed (letters, digits, _ and - only)`},
		{name: "bad UTF-8", data: "{\"card_id\":\"p1\",\"openid\":\"o\xff\",\"out_request_no\":\"n1\"}", field: "openid", want: "openid: is not valid UTF-8"},
		{name: "duplicate key", data: `{"card_id":"p1","openid":"o1","openid":"o2","out_request_no":"n1"}`, field: "openid", want: "openid: is given more than once"},
		{name: "duplicate key in another case", data: `{"card_id":"p1","openid":"o1","OpenID":"o2","out_request_no":"n1"}`, field: "openid", want: "openid: is given more than once"},
		{name: "duplicate key through an escape", data: `{"card_id":"p1","openid":"o1","open\u0069d":"o2","out_request_no":"n1"}`, field: "openid", want: "openid: is given more than once"},
		{name: "run kept", data: `{"card_id":"p1","openid":"o1","out_request_no":"n1","run":"nightly-1"}`},
		{name: "run given twice", data: `{"card_id":"p1","openid":"o1","out_request_no":"n1","run":"r1","Run":"r2"}`, field: "run", want: "run: is given more than once"},
		{name: "duplicate unknown key", data: `{"card_id":"p1","openid":"o1","out_request_no":"n1","x":1,"x":2}`, want: `invalid payload: key "x": is given more than once`},
		{name: "lone surrogate in an unknown key's value", data: `{"card_id":"p1","openid":"o1","out_request_no":"n1","x":["\udfff"]}`, want: `invalid payload: key "x": has an unpaired UTF-16 surrogate escape (\udfff)`},
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
			if tt.field != "" {
				var fe *tasks.FieldError
				require.ErrorAs(t, err, &fe)
				require.Equal(t, tt.field, fe.Field)
			}
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
		require.True(t, followsRules(p))
		// What the worker imports is what encoding/json reads too: no
		// key it would match twice, no U+FFFD it would make up.
		var std tasks.Payload
		require.NoError(t, json.Unmarshal(data, &std))
		require.Equal(t, p, std)
		task, err := tasks.NewImportTask(p)
		require.NoError(t, err)
		back, err := tasks.DecodePayload(task.Payload())
		require.NoError(t, err)
		require.Equal(t, p, back)
	})
}

// The rules of Validate, written another way: a payload Validate accepts
// matches them, and one it refuses breaks one of them.
var (
	idRule           = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	codeRule         = regexp.MustCompile("^[!-~]*$")
	outRequestNoRule = regexp.MustCompile(`^[A-Za-z0-9|_*-]+$`)
)

func followsRules(p tasks.Payload) bool {
	return idRule.MatchString(p.CardID) && len(p.CardID) <= tasks.MaxCardIDLen &&
		idRule.MatchString(p.OpenID) && len(p.OpenID) <= tasks.MaxOpenIDLen &&
		codeRule.MatchString(p.Code) && len(p.Code) <= tasks.MaxCodeLen &&
		outRequestNoRule.MatchString(p.OutRequestNo) && len(p.OutRequestNo) <= tasks.MaxOutRequestNoLen
}

// FuzzValidate checks Validate against the rules as regular expressions,
// and that every refusal names a field of the payload.
func FuzzValidate(f *testing.F) {
	f.Add("pbLatjvWOibDc5-TBnbUk1pD12o0", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "", "1900000001-20261128-000001")
	f.Add("..", "o 1", "12 34", "n/1")
	f.Add("p1", "o\u200b1", "k\x7f", "n|_*-")
	f.Add("p1", "o\xff", "\u00e9", "")
	f.Fuzz(func(t *testing.T, cardID, openID, code, outRequestNo string) {
		p := tasks.Payload{CardID: cardID, OpenID: openID, Code: code, OutRequestNo: outRequestNo}
		err := p.Validate()
		require.Equal(t, followsRules(p), err == nil, "Validate says %v", err)
		if err != nil {
			var fe *tasks.FieldError
			require.ErrorAs(t, err, &fe)
			require.Contains(t, []string{"card_id", "openid", "code", "out_request_no"}, fe.Field)
			require.True(t, utf8.ValidString(err.Error()), "the message is text")
		}
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
