package wechatpaytest_test

import (
	"context"
	"fmt"
	"regexp"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/cardimport/cardimport/internal/wechatpay"
	"github.com/cardimport/cardimport/internal/wechatpay/wechatpaytest"
)

// An emulator and an unmodified wechatpay-go client in public-key mode,
// with its response validator on. A lost answer does not import twice.
func ExampleNewServer() {
	keys, err := wechatpaytest.GenerateKeys()
	if err != nil {
		panic(err)
	}
	srv := wechatpaytest.NewServer(keys)
	defer srv.Close()

	ctx := context.Background()
	client, err := core.NewClient(ctx,
		option.WithWechatPayPublicKeyAuthCipher(keys.MchID, keys.MchCertSerial, keys.MchPrivateKey, keys.PublicKeyID, keys.WechatPayPublicKey()),
		option.WithHTTPClient(srv.Client()))
	if err != nil {
		panic(err)
	}
	url := srv.URL + wechatpay.ImportPath("pbLatjvWOibDc5-TBnbUk1pD12o0")
	body := map[string]string{"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "out_request_no": "1900000001-20240601-1"}

	srv.LoseNextAnswers(1)
	lost, err := client.Post(ctx, url, body)
	fmt.Println("first attempt refused:", core.IsAPIError(err, "SYSTEM_ERROR"))
	// wechatpay-go verifies only 2xx answers; its validator runs on the
	// refusal too, which WeChat signed.
	validator := validators.NewWechatPayResponseValidator(verifiers.NewSHA256WithRSAPubkeyVerifier(keys.PublicKeyID, *keys.WechatPayPublicKey()))
	fmt.Println("refusal signed:", validator.Validate(ctx, lost.Response) == nil)

	res, err := client.Post(ctx, url, body)
	if err != nil {
		panic(err)
	}
	var out struct{ Code string }
	if err := core.UnMarshalResponse(res.Response, &out); err != nil {
		panic(err)
	}
	fmt.Println("retry verified, 12-digit code:", regexp.MustCompile(`^\d{12}$`).MatchString(out.Code))
	fmt.Println("imports:", srv.ImportCount("pbLatjvWOibDc5-TBnbUk1pD12o0", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"))
	fmt.Printf("stats: %+v\n", srv.Stats())
	// Output:
	// first attempt refused: true
	// refusal signed: true
	// retry verified, 12-digit code: true
	// imports: 1
	// stats: {Requests:2 Imports:1 Replays:1 Members:1 Refusals:map[SYSTEM_ERROR:1] Lists:0 ForgedRefusals:0 Redirects:0 CertificateDownloads:0 PlatformRotations:0}
}
