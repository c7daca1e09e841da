// Package jsonobject reads one JSON object the way a member's fields must
// be read: every key once, every string as it was written.
//
// encoding/json lets the last of two equal keys win, and turns a lone
// UTF-16 surrogate escape ("\ud800") or a byte that is not UTF-8 into
// U+FFFD without a word. Either way an openid could change between what a
// producer sent and what the worker imports, or two readers of one payload
// could see two members. The tasks package reads queued payloads through
// Decode, and memberfile reads JSON lines and the HTTP intake's members
// through it, so every way in refuses such an object, naming the key.
package jsonobject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Field is one key of an object and its value as it was written.
type Field struct {
	// Key is the decoded key.
	Key string
	// Value is the raw JSON of the value, checked as Decode documents.
	Value json.RawMessage
}

// KeyError says what is wrong with one key of an object or its value.
type KeyError struct {
	// Key is the decoded key.
	Key string
	// Problem says what is wrong, without repeating the value.
	Problem string
}

func (e *KeyError) Error() string { return fmt.Sprintf("key %q: %s", e.Key, e.Problem) }

// KindError says that a JSON value is not an object.
type KindError struct {
	// Kind names the value's kind as Kind does: "an array", "null"…
	Kind string
}

func (e *KindError) Error() string { return "is " + e.Kind + ", want a JSON object" }

// Problems a KeyError reports.
const (
	ProblemRepeated = "is given more than once"
	ProblemUTF8     = "is not valid UTF-8"
)

// Decode returns the fields of the JSON object data, in the order written.
// Its error is a *json.SyntaxError when data is not one JSON value, a
// *KindError when the value is not an object, and a *KeyError when a key
// appears twice, or a key or a value holds bytes that are not UTF-8 or a
// surrogate escape without its pair (values nested in the object's values
// included).
func Decode(data []byte) ([]Field, error) {
	// Unmarshal checks the whole input first, so the token stream below
	// meets valid JSON only and a syntax error keeps its offset.
	if err := json.Unmarshal(data, new(json.RawMessage)); err != nil {
		return nil, err
	}
	if k := Kind(data); k != "an object" {
		return nil, &KindError{Kind: k}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var fields []Field
	seen := map[string]struct{}{}
	for dec.More() {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string) // valid JSON: an object's tokens here are keys
		if problem := checkText(data[start:dec.InputOffset()]); problem != "" {
			return nil, &KeyError{Key: key, Problem: "the key " + problem}
		}
		if _, ok := seen[key]; ok {
			return nil, &KeyError{Key: key, Problem: ProblemRepeated}
		}
		seen[key] = struct{}{}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		if problem := checkText(raw); problem != "" {
			return nil, &KeyError{Key: key, Problem: problem}
		}
		fields = append(fields, Field{Key: key, Value: raw})
	}
	return fields, nil
}

// checkText finds in raw JSON what encoding/json would silently replace
// with U+FFFD: bytes that are not UTF-8, and surrogate escapes without
// their pair. raw must be valid JSON or a part of it that starts outside a
// string, so that every backslash begins an escape.
func checkText(raw []byte) string {
	if !utf8.Valid(raw) {
		return ProblemUTF8
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character; the loop steps over it
		if raw[i] != 'u' {
			continue
		}
		r := hex4(raw[i+1 : i+5])
		i += 4
		switch {
		case r >= 0xd800 && r < 0xdc00:
			if i+6 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
				if low := hex4(raw[i+3 : i+7]); low >= 0xdc00 && low < 0xe000 {
					i += 6
					continue
				}
			}
			return fmt.Sprintf("has an unpaired UTF-16 surrogate escape (\\u%04x)", r)
		case r >= 0xdc00 && r < 0xe000:
			return fmt.Sprintf("has an unpaired UTF-16 surrogate escape (\\u%04x)", r)
		}
	}
	return ""
}

// hex4 decodes the four hex digits of a \u escape of valid JSON.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// String decodes a value Decode returned that must be a string; null
// counts as absent and gives "". A value of another kind gives a problem
// naming its kind.
func String(raw json.RawMessage) (s string, problem string) {
	switch k := Kind(raw); k {
	case "null":
		return "", ""
	case "a string":
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", "is not a valid JSON string"
		}
		return s, ""
	default:
		return "", "is " + k + ", want a string"
	}
}

// Kind names the kind of a valid JSON value, for messages: "an object",
// "an array", "a string", "a number", "a boolean", "null", or "empty".
func Kind(data []byte) string {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return "empty"
	}
	switch data[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
