// Package wechatpaytest is an in-process emulator of WeChat Pay's v3
// member-card import endpoint, shaped like net/http/httptest: NewServer
// listens on 127.0.0.1, Server.URL is its base URL, and the unmodified
// wechatpay-go client talks to it with its response validator on.
//
// The emulator checks what WeChat checks and signs what WeChat signs, so a
// test that passes against it exercises the real signing code:
//
//   - Every request to /v3/… must carry a valid
//     "WECHATPAY2-SHA256-RSA2048" Authorization header: the merchant id and
//     certificate serial of Keys, a timestamp within 5 minutes of the
//     emulator's clock, and a SHA256-with-RSA signature over
//     "METHOD\nREQUEST_URI\nTIMESTAMP\nNONCE\nBODY\n" made with the merchant
//     private key. Anything else is answered 401 SIGN_ERROR, with a message
//     naming the check that failed.
//   - Every 2xx answer is signed over "TIMESTAMP\nNONCE\nBODY\n". The key is
//     the one the request's Wechatpay-Serial header names (wechatpay-go sends
//     the serial it trusts): the platform certificate's key for
//     Keys.PlatformSerial, otherwise the WeChat Pay public key
//     (Keys.PublicKeyID), which is what merchants created since 2024 hold.
//     GET /v3/certificates is always signed with the platform certificate.
//   - Error answers are JSON {"code","message","detail"} and unsigned, as
//     WeChat's are. Every answer carries a Request-ID header.
//
// # Endpoints
//
//	POST /v3/marketing/membercard-open/cards/{card_id}/users/import
//	GET  /v3/certificates   platform certificate, AES-256-GCM with Keys.APIv3Key
//	GET  /stats             Stats as JSON; no signature, for sandbox processes
//
// # Rules
//
// An import call goes through these steps in order; the first that answers
// ends it. Latency (WithLatency, SetLatency) comes before all of them.
//
//	step                                  answer
//	------------------------------------  ----------------------------------------------
//	over the rate limit (WithRateLimit):  429 RATELIMIT_EXCEEDED
//	  more than N in any one second
//	signature check fails                 401 SIGN_ERROR
//	an outage (SetOutage) is on           its 5xx; nothing imported
//	FailNext scheduled                    the scheduled error; nothing imported
//	Accept202Next scheduled               202, empty signed body; nothing imported
//	a field over its limit                400 PARAM_ERROR; detail names the field
//	first attempt of an out_request_no    500 SYSTEM_ERROR (WithFirstAttemptFaults)
//	  chosen by WithFirstAttemptFaults
//	out_request_no seen, same card_id,    the first answer again (a replay)
//	  openid and code
//	out_request_no seen, other ones       400 INVALID_REQUEST MessageOutRequestNoReused
//	card_id starting "pUNKNOWN"           404 NOT_FOUND
//	card_id starting "pNOAUTH",           403 NO_AUTH
//	  unless AuthorizeCard named it
//	openid starting "o_notrade_"          400 INVALID_REQUEST MessageNoTrade
//	openid starting "o_member_", a Seed   400 INVALID_REQUEST MessageAlreadyMember
//	  member, or one imported under
//	  another out_request_no
//	code held by another member           400 INVALID_REQUEST MessageCodeTaken
//	otherwise                             import; 200 {"code":"<12 digits or the given code>"}
//	  then, LoseNextAnswers scheduled     the import stands; 500 SYSTEM_ERROR
//	  then, ForgeNext scheduled           the 2xx (also a replay or 202) carries a
//	                                      broken signature
//
// The prefixes are the exported constants CardIDPrefixNotFound,
// CardIDPrefixNoAuth, OpenIDPrefixNoTrade and OpenIDPrefixMember.
//
// Nothing public says what WeChat answers to a repeated out_request_no; the
// replay and refusal above are the assumption the worker is built on. A
// client that gives up waiting (a timeout) does not stop an import: the
// emulator finishes it, as a remote server would, so the retry meets the
// replay.
//
// Stats, ImportCount and Members tell a test what happened; ImportCount of a
// member must be 1 however many retries, lost answers and forged signatures
// the import went through.
package wechatpaytest
