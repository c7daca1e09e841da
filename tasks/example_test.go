package tasks_test

import (
	"errors"
	"fmt"

	"github.com/cardimport/cardimport/tasks"
)

// A registration system builds one task per member; its task ID is the
// out_request_no, so enqueueing it twice is refused as a duplicate.
func ExampleNewImportTask() {
	task, err := tasks.NewImportTask(tasks.Payload{
		CardID:       "pbLatjvWOibDc5-TBnbUk1pD12o0",
		OpenID:       "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
		OutRequestNo: "1900000001-20261128-000001",
	}, tasks.WithQueue("membercard"))
	if err != nil {
		panic(err)
	}
	fmt.Println(task.Type())
	fmt.Println(string(task.Payload()))
	// Output:
	// membercard:import
	// {"card_id":"pbLatjvWOibDc5-TBnbUk1pD12o0","openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o","out_request_no":"1900000001-20261128-000001"}
}

// Validation names the field WeChat would refuse and what is wrong with it,
// without repeating the value.
func ExamplePayload_Validate() {
	err := tasks.Payload{CardID: "pbLatjvWOibDc5-TBnbUk1pD12o0", OpenID: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", OutRequestNo: "2026/11/28-1"}.Validate()
	var fe *tasks.FieldError
	if errors.As(err, &fe) {
		fmt.Println(fe.Field)
	}
	fmt.Println(err)
	// Output:
	// out_request_no
	// out_request_no: character '/' at position 5 is not allowed (letters, digits and | _ * - only)
}
