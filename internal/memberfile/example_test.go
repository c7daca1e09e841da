package memberfile_test

import (
	"fmt"
	"io"
	"strings"

	"github.com/cardimport/cardimport/internal/memberfile"
)

func ExampleReader() {
	file := `openid,out_request_no,code
oUser0001,order-1,
,order-2,
oUser0003,"order-3,
oUser0004,order-4,
`
	r, err := memberfile.NewReader(strings.NewReader(file), memberfile.FormatCSV,
		memberfile.WithDefaultCardID("pLcard0001"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for {
		row, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if row.Err != nil {
			fmt.Println(row.Err)
			continue
		}
		fmt.Printf("line %d: %s %s\n", row.Line, row.Payload.CardID, row.Payload.OutRequestNo)
	}
	// Output:
	// line 2: pLcard0001 order-1
	// line 3: openid: is required
	// line 4: out_request_no: extraneous or missing " in quoted-field (the record runs on to line 5)
	// line 5: pLcard0001 order-4
}
