package testkit

import (
	"io"
	"net/http"
	"testing"
)

// Fetch sends req and returns the answer's status and body, failing tb if
// either cannot be had.
func Fetch(tb testing.TB, req *http.Request) (int, string) {
	tb.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return res.StatusCode, string(body)
}
