package jsonobject_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/jsonobject"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want []string // "key=value" of each field
		// wantErr is the error's message; wantKey the key a *KeyError names.
		wantErr string
		wantKey string
	}{
		{name: "fields in order", data: ` {"b":"x","a":[1,{"c":null}],"d":"\ud83d\ude00"} `, want: []string{`b="x"`, `a=[1,{"c":null}]`, `d="\ud83d\ude00"`}},
		{name: "empty object", data: `{}`},
		{name: "escaped backslash is no escape", data: `{"a":"\\ud800"}`, want: []string{`a="\\ud800"`}},
		{name: "literal replacement character", data: `{"a":"�"}`, want: []string{`a="�"`}},
		{name: "not JSON", data: `{"a":`, wantErr: "unexpected end of JSON input"},
		{name: "two values", data: `{} {}`, wantErr: "invalid character '{' after top-level value"},
		{name: "array", data: `[{"a":1}]`, wantErr: "is an array, want a JSON object"},
		{name: "null", data: `null`, wantErr: "is null, want a JSON object"},
		{name: "repeated key", data: `{"a":1,"b":2,"a":3}`, wantErr: `key "a": is given more than once`, wantKey: "a"},
		{name: "repeated key through an escape", data: `{"a":1,"\u0061":3}`, wantErr: `key "a": is given more than once`, wantKey: "a"},
		{name: "keys differing in case are two keys", data: `{"a":1,"A":2}`, want: []string{"a=1", "A=2"}},
		{name: "lone high surrogate", data: `{"a":"x\ud800"}`, wantErr: `key "a": has an unpaired UTF-16 surrogate escape (\ud800)`, wantKey: "a"},
		{name: "lone low surrogate", data: `{"a":"\uDFFFx"}`, wantErr: `key "a": has an unpaired UTF-16 surrogate escape (\udfff)`, wantKey: "a"},
		{name: "reversed pair", data: `{"a":"\ude00\ud83d"}`, wantErr: `key "a": has an unpaired UTF-16 surrogate escape (\ude00)`, wantKey: "a"},
		{name: "high surrogate then a letter escape", data: `{"a":"\ud800\u0041"}`, wantErr: `key "a": has an unpaired UTF-16 surrogate escape (\ud800)`, wantKey: "a"},
		{name: "lone surrogate nested", data: `{"a":{"b":["\ud800"]}}`, wantErr: `key "a": has an unpaired UTF-16 surrogate escape (\ud800)`, wantKey: "a"},
		{name: "lone surrogate in a key", data: `{"a\ud800":1}`, wantErr: "key \"a\ufffd\": the key has an unpaired UTF-16 surrogate escape (\\ud800)", wantKey: "a\ufffd"},
		{name: "bad UTF-8 in a value", data: "{\"a\":\"\xff\"}", wantErr: `key "a": is not valid UTF-8`, wantKey: "a"},
		{name: "bad UTF-8 in a key", data: "{\"a\xff\":1}", wantErr: "key \"a\ufffd\": the key is not valid UTF-8", wantKey: "a\ufffd"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fields, err := jsonobject.Decode([]byte(tt.data))
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				var ke *jsonobject.KeyError
				if tt.wantKey != "" {
					require.ErrorAs(t, err, &ke)
					require.Equal(t, tt.wantKey, ke.Key)
				} else {
					require.False(t, errors.As(err, &ke), "no key to name")
				}
				return
			}
			require.NoError(t, err)
			var got []string
			for _, f := range fields {
				got = append(got, f.Key+"="+string(f.Value))
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw         string
		want        string
		wantProblem string
	}{
		{raw: `"o\u005f1"`, want: "o_1"},
		{raw: `null`},
		{raw: `12`, wantProblem: "is a number, want a string"},
		{raw: `{"a":1}`, wantProblem: "is an object, want a string"},
		{raw: ` [1]`, wantProblem: "is an array, want a string"},
		{raw: `false`, wantProblem: "is a boolean, want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			got, problem := jsonobject.String(json.RawMessage(tt.raw))
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.wantProblem, problem)
		})
	}
}

// FuzzDecode checks Decode against encoding/json: what it accepts is a
// JSON object whose keys are distinct and whose strings encoding/json
// decodes without adding a single U+FFFD, and every lone surrogate it
// refuses is one encoding/json would have replaced.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"card_id":"p1","openid":"o1","out_request_no":"n1"}`,
		`{"a":"\ud83d\ude00","b":"\\ud800","c":"\ufffd�"}`,
		`{"a":"\ud800","a":1}`,
		`{"a":{"b":["\udc00",1,null,true]}}`,
		"{\"a\":\"\xff\"}",
		`[]`,
		`{"a":1,"\u0061":2}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fields, err := jsonobject.Decode(data)
		if err != nil {
			var ke *jsonobject.KeyError
			if errors.As(err, &ke) && strings.Contains(ke.Problem, "surrogate") {
				require.Contains(t, decodedStrings(t, data), "\ufffd", "a refused surrogate is one encoding/json replaces")
			}
			return
		}
		require.True(t, json.Valid(data))
		var obj map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(data, &obj))
		require.Len(t, obj, len(fields), "keys are distinct")
		for _, fl := range fields {
			require.Equal(t, string(obj[fl.Key]), string(fl.Value), "the value is the one encoding/json reads")
		}
		require.Equal(t, replacementsWritten(data), strings.Count(decodedStrings(t, data), "\ufffd"),
			"encoding/json adds no U+FFFD to what Decode accepts")
	})
}

// decodedStrings returns every key and string of data as encoding/json
// decodes them, joined.
func decodedStrings(t *testing.T, data []byte) string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	var b strings.Builder
	for {
		tok, err := dec.Token()
		if err != nil {
			return b.String()
		}
		if s, ok := tok.(string); ok {
			b.WriteString(s)
		}
	}
}

// replacementsWritten counts the U+FFFD data spells out: as the character
// itself or as the escape \ufffd.
func replacementsWritten(data []byte) int {
	n := bytes.Count(data, []byte("\ufffd"))
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			continue
		}
		i++
		if data[i] == 'u' && i+4 < len(data) && strings.EqualFold(string(data[i+1:i+5]), "fffd") {
			n++
			i += 4
		}
	}
	return n
}
