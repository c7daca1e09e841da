// Package wechatpaytest is an in-process emulator of WeChat Pay's v3
// member-card import endpoint and of the list of the cards a member holds,
// shaped like net/http/httptest: NewServer listens on 127.0.0.1,
// Server.URL is its base URL, and the unmodified wechatpay-go client talks
// to it with its response validator on.
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
//   - Every answer to a request whose signature verified is signed over
//     "TIMESTAMP\nNONCE\nBODY\n", error answers included, as WeChat signs
//     them. The key is the one the request's Wechatpay-Serial header names
//     (wechatpay-go sends the serial it trusts): the newest platform key
//     for any platform certificate's serial, otherwise the WeChat Pay
//     public key (Keys.PublicKeyID), which is what merchants created since
//     2024 hold. After RotatePlatformCertificate a client that asks for the
//     old serial thus gets answers it cannot verify until it downloads the
//     new certificate. GET /v3/certificates lists every platform
//     certificate and is signed with the one the request names, or the
//     newest.
//   - Answers given before the signature was verified are unsigned: 429
//     (the rate limit comes first), 401 SIGN_ERROR (WeChat cannot trust
//     the request, so it does not sign), 400 for an unreadable body, and
//     404 for a path outside /v3/. So are the answers a test has a stand-in
//     on the path give in WeChat's place (ForgeRefusalNext, RedirectNext,
//     …): they carry no Wechatpay-* header and no Request-ID.
//   - Error answers are JSON {"code","message","detail"}. Every answer of
//     WeChat's carries a Request-ID header.
//
// # Endpoints
//
//	POST /v3/marketing/membercard-open/cards/{card_id}/users/import
//	GET  /v3/marketing/membercard-open/user/cards?openid=…&appid=…&offset=N&limit=M
//	                        the cards a member holds, a page at a time
//	GET  /v3/certificates   platform certificates, AES-256-GCM with Keys.APIv3Key
//	GET  /stats             Stats as JSON; no signature, for sandbox processes
//
// # Rules
//
// An import call goes through these steps in order; the first that answers
// ends it. Latency (WithLatency, SetLatency) comes before all of them.
// "Signed" and "unsigned" are as above.
//
//	step                                  answer
//	------------------------------------  ----------------------------------------------
//	over the rate limit (WithRateLimit):  429 RATELIMIT_EXCEEDED, unsigned
//	  more than N in any one second
//	signature check fails                 401 SIGN_ERROR, unsigned
//	ForgeRefusalFor or RedirectFor        the forged error or the 3xx with Location,
//	  scheduled for the out_request_no,     unsigned, no Request-ID; nothing imported
//	  then ForgeRefusalNext/RedirectNext    (the call never reached WeChat)
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
//	the member holds the card: openid     400 INVALID_REQUEST MessageAlreadyMember
//	  starting "o_member_" (it is given
//	  a code), Seed or SeedCards, or
//	  imported under another out_request_no
//	code held by another member           400 INVALID_REQUEST MessageCodeTaken
//	otherwise                             import; 200 {"code":"<12 digits or the given code>"}
//	  then, LoseNextAnswers scheduled     the import stands; 500 SYSTEM_ERROR
//	  then, ForgeNext scheduled           the 2xx (also a replay or 202) carries a
//	                                      broken signature
//
// Every answer after the signature check is signed, but for the forged
// and redirected ones.
//
// A list call goes through latency, the rate limit and the signature
// check as an import does, then:
//
//	step                                  answer
//	------------------------------------  ----------------------------------------------
//	an outage (SetOutage) is on           its 5xx
//	FailNextList scheduled                the scheduled error
//	openid missing or over 128            400 PARAM_ERROR; detail names the field
//	  characters, appid over 32, offset
//	  not an integer from 0, limit not
//	  from 1 to 20
//	otherwise                             200 {"data":[{"card_id","code"}],"total_count",
//	                                      "offset","limit"}: the cards the member holds,
//	                                      sorted by card_id, page offset (from 0) of
//	                                      limit (default 20) cards
//	  then, ForgeNextList scheduled       the 200 carries a broken signature
//
// The scheduled faults of the import (FailNext, Accept202Next,
// LoseNextAnswers, ForgeNext, ForgeRefusal…, Redirect…) never hit a list
// call, nor FailNextList and ForgeNextList an import, so a test can fail
// one without the other; an outage hits both, and both count toward the
// rate limit (Admitted). GET /v3/certificates meets only latency, the rate
// limit and the signature check.
//
// A member holds a card they were imported into, one Seed or SeedCards
// gave them, and, for an openid starting "o_member_", every card an import
// or HeldCode named for them. Each holder has a 12-digit code unique within
// the card, which HeldCode returns.
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
// Stats, ImportCount, Members, Failures, HeldCode and CertificateDownloads
// tell a test what happened; ImportCount of a member must be 1 however many
// retries, lost answers, forged signatures, forged refusals and redirects
// the import went through.
package wechatpaytest
