package memberfile

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

func BenchmarkReader(b *testing.B) {
	const rows = 10_000
	var csvFile, jsonlFile bytes.Buffer
	csvFile.WriteString(header)
	for i := range rows {
		fmt.Fprintf(&csvFile, "pLcard0001,oUser%012d,,order-%08d\n", i, i)
		fmt.Fprintf(&jsonlFile, `{"card_id":"pLcard0001","openid":"oUser%012d","out_request_no":"order-%08d"}`+"\n", i, i)
	}
	for _, bb := range []struct {
		name   string
		format Format
		data   []byte
	}{
		{"csv", FormatCSV, csvFile.Bytes()},
		{"jsonl", FormatJSONL, jsonlFile.Bytes()},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bb.data)))
			for b.Loop() {
				r, err := NewReader(bytes.NewReader(bb.data), bb.format)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					row, err := r.Next()
					if err == io.EOF {
						break
					}
					if err != nil || row.Err != nil {
						b.Fatal(err, row.Err)
					}
					n++
				}
				if n != rows {
					b.Fatalf("read %d rows, want %d", n, rows)
				}
			}
		})
	}
}
