package wechatpaytest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// authScheme is the only scheme WeChat Pay v3 accepts from RSA merchants.
const authScheme = "WECHATPAY2-SHA256-RSA2048"

// maxClockSkew is how far a request's timestamp may be from WeChat's clock.
const maxClockSkew = 5 * time.Minute

// forgedPrefix starts the signatures of WeChat's probe answers, which are
// deliberately wrong so that clients that do not verify are found out.
const forgedPrefix = "WECHATPAY/SIGNTEST/"

// authorization is a parsed Authorization header.
type authorization struct {
	MchID     string
	NonceStr  string
	Timestamp string
	SerialNo  string
	Signature string
}

// parseAuthorization reads `WECHATPAY2-SHA256-RSA2048 k="v",k="v",…`. The
// order of the fields does not matter; unknown fields are ignored, duplicate
// or missing ones are errors. Errors never quote the header, which holds the
// signature.
func parseAuthorization(header string) (authorization, error) {
	scheme, params, _ := strings.Cut(strings.TrimSpace(header), " ")
	if scheme == "" {
		return authorization{}, errors.New("authorization header missing")
	}
	if scheme != authScheme {
		return authorization{}, errors.New("authorization scheme is not " + authScheme)
	}
	seen := map[string]bool{}
	var a authorization
	want := map[string]*string{
		"mchid": &a.MchID, "nonce_str": &a.NonceStr, "timestamp": &a.Timestamp,
		"serial_no": &a.SerialNo, "signature": &a.Signature,
	}
	rest := params
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			break
		}
		key, after, ok := strings.Cut(rest, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, `",`) {
			return authorization{}, errors.New("authorization field is not key=\"value\"")
		}
		if !strings.HasPrefix(after, `"`) {
			return authorization{}, fmt.Errorf("authorization field %s is not quoted", key)
		}
		value, after, ok := strings.Cut(after[1:], `"`)
		if !ok {
			return authorization{}, fmt.Errorf("authorization field %s has no closing quote", key)
		}
		if seen[key] {
			return authorization{}, fmt.Errorf("authorization field %s appears twice", key)
		}
		seen[key] = true
		if dst, known := want[key]; known {
			*dst = value
		}
		after = strings.TrimLeft(after, " ")
		if after != "" && after[0] != ',' {
			return authorization{}, fmt.Errorf("authorization field %s is not followed by a comma", key)
		}
		rest = strings.TrimPrefix(after, ",")
	}
	for _, name := range []string{"mchid", "nonce_str", "timestamp", "serial_no", "signature"} {
		if *want[name] == "" {
			return authorization{}, fmt.Errorf("authorization field %s missing", name)
		}
	}
	return a, nil
}

// verifyRequest checks a request's Authorization header the way WeChat's
// gateway does. Its error says which check failed, never what the signature
// was.
func (e *Emulator) verifyRequest(r *http.Request, body []byte) error {
	a, err := parseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	if a.MchID != e.keys.MchID {
		return errors.New("mchid is not this merchant's")
	}
	if a.SerialNo != e.keys.MchCertSerial {
		return errors.New("serial_no is not the serial of the merchant API certificate")
	}
	ts, err := strconv.ParseInt(a.Timestamp, 10, 64)
	if err != nil {
		return errors.New("timestamp is not Unix seconds")
	}
	if skew := e.clock().Sub(time.Unix(ts, 0)); skew > maxClockSkew || skew < -maxClockSkew {
		return fmt.Errorf("timestamp is %d s away from server time, at most %d s allowed", int64(skew.Abs().Seconds()), int64(maxClockSkew.Seconds()))
	}
	sig, err := base64.StdEncoding.DecodeString(a.Signature)
	if err != nil {
		return errors.New("signature is not base64")
	}
	// The request URI is signed as sent: path and query, without the host.
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		uri = r.URL.RequestURI()
	}
	message := r.Method + "\n" + uri + "\n" + a.Timestamp + "\n" + a.NonceStr + "\n" + string(body) + "\n"
	sum := sha256.Sum256([]byte(message))
	pub, ok := e.keys.MchCert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return errors.New("merchant certificate has no RSA key")
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("signature does not verify with the merchant API certificate (wrong private key, or method, URI, timestamp, nonce or body differ from what was signed)")
	}
	return nil
}

// signAnswer sets the Wechatpay-* headers of an answer, 2xx or error, with
// the key signingKey picks for the serial the client asked for in its
// Wechatpay-Serial header.
func (e *Emulator) signAnswer(h http.Header, acceptSerial string, certificates bool, body []byte, forge bool) error {
	serial, key := e.signingKey(acceptSerial, certificates)
	timestamp := strconv.FormatInt(e.clock().Unix(), 10)
	nonce := randomString(alphanumerics, 32)
	message := timestamp + "\n" + nonce + "\n" + string(body) + "\n"
	if forge {
		// A real signature by the right key, over other bytes: only a client
		// that verifies notices.
		message = forgedPrefix + message
	}
	sum := sha256.Sum256([]byte(message))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return fmt.Errorf("rsa sign: %w", err)
	}
	signature := base64.StdEncoding.EncodeToString(sig)
	if forge {
		signature = forgedPrefix + signature
	}
	h.Set("Wechatpay-Timestamp", timestamp)
	h.Set("Wechatpay-Nonce", nonce)
	h.Set("Wechatpay-Signature", signature)
	h.Set("Wechatpay-Serial", serial)
	return nil
}

// signingKey picks the key an answer is signed with. A client that asks
// for any platform certificate's serial gets the newest platform key, as
// WeChat moves every merchant to a new certificate at once: a client that
// has not downloaded it yet cannot verify, which is what rotation looks
// like from the merchant's side. GET /v3/certificates (certificates) is
// signed with the certificate the client named when it is one of WeChat's,
// so that the client can verify the list that brings the new one, and
// with the newest otherwise. A client that names no platform certificate
// gets the WeChat Pay public key (PublicKeyID), which is what WeChat does
// for merchants created since public keys came in.
func (e *Emulator) signingKey(acceptSerial string, certificates bool) (string, *rsa.PrivateKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	newest := e.platforms[len(e.platforms)-1]
	for _, p := range e.platforms {
		if p.serial != acceptSerial {
			continue
		}
		if certificates {
			return p.serial, p.key
		}
		return newest.serial, newest.key
	}
	if certificates {
		return newest.serial, newest.key
	}
	return e.keys.PublicKeyID, e.keys.PublicKeyPrivate
}
