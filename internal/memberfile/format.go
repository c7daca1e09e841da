package memberfile

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Format is the encoding of a member file.
type Format string

const (
	// FormatCSV is CSV with a header row naming the columns card_id, openid,
	// code and out_request_no, in any order.
	FormatCSV Format = "csv"
	// FormatJSONL is JSON lines: one object per line with the keys card_id,
	// openid, code and out_request_no.
	FormatJSONL Format = "jsonl"
)

// ParseFormat returns the format named s ("csv" or "jsonl", any case).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case FormatCSV, FormatJSONL:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (csv, jsonl)", s)
}

// FormatFromPath guesses the format from a file name's extension: .jsonl,
// .ndjson and .json are JSON lines, anything else (including "-" for
// standard input) is CSV, the format registration systems export most.
func FormatFromPath(path string) Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".ndjson", ".json":
		return FormatJSONL
	}
	return FormatCSV
}
