package demo

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/memberfile"
)

// TestSampleIsWhatTheBannerSays reads the built-in sample with the member
// file decoder the enqueue command uses.
func TestSampleIsWhatTheBannerSays(t *testing.T) {
	t.Parallel()
	s := newSample()
	lines := bytes.Count(s.csv, []byte("\n"))
	require.Equal(t, 1+s.valid+sampleInvalid, lines, "header, valid rows, invalid rows")
	require.Equal(t, sampleNew+sampleMemberPrefix+sampleSeeded+sampleNoTrade+sampleUnknownCard+sampleNoAuthCard+sampleCodeTaken, s.valid)
	require.Len(t, s.seeded, sampleSeeded)
	require.Equal(t, s.csv, newSample().csv, "the same story every run")

	r, err := memberfile.NewReader(bytes.NewReader(s.csv), memberfile.FormatCSV)
	require.NoError(t, err)
	var valid, invalid int
	seen := map[string]bool{}
	for {
		row, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		if row.Err != nil {
			invalid++
			continue
		}
		require.False(t, seen[row.Payload.OutRequestNo], "out_request_no %s twice", row.Payload.OutRequestNo)
		seen[row.Payload.OutRequestNo] = true
		valid++
	}
	require.Equal(t, s.valid, valid)
	require.Equal(t, sampleInvalid, invalid)
}
