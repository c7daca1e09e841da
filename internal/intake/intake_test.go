package intake_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/cardimport/cardimport/internal/deadletter"
	"github.com/cardimport/cardimport/internal/intake"
	"github.com/cardimport/cardimport/internal/testkit"
	"github.com/cardimport/cardimport/results"
	"github.com/cardimport/cardimport/tasks"
)

const token = "t0ken-for-the-intake-tests"

// testBundle is a running intake on 127.0.0.1 in front of a queue of the
// test's own.
type testBundle struct {
	url    string
	queue  string
	insp   *asynq.Inspector
	opt    asynq.RedisConnOpt
	logs   *testkit.Buffer
	stop   context.CancelFunc
	served chan error
}

// newStore is the dead-letter store (and through it the results) of queue.
func newStore(t *testing.T, opt asynq.RedisConnOpt, queue string) *deadletter.Store {
	t.Helper()
	store, err := deadletter.New(opt, queue)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func setup(t *testing.T, cfg intake.Config) *testBundle {
	t.Helper()
	r := testkit.NewRedis(t)
	q := r.Queue(t)
	client := asynq.NewClient(r.Opt)
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(r.Opt)
	t.Cleanup(func() { _ = insp.Close() })
	producer, err := tasks.NewProducer(client, tasks.WithTaskOptions(tasks.WithQueue(q)))
	require.NoError(t, err)

	logs := &testkit.Buffer{}
	cfg.Producer = producer
	cfg.Store = newStore(t, r.Opt, q)
	cfg.Logger = zerolog.New(logs)
	cfg.Addr = "127.0.0.1:0"
	srv, err := intake.New(context.Background(), cfg)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	b := &testBundle{url: "http://" + ln.Addr().String(), queue: q, insp: insp, opt: r.Opt, logs: logs, stop: stop, served: make(chan error, 1)}
	go func() { b.served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-b.served:
		case <-time.After(30 * time.Second):
			t.Error("the intake did not stop")
		}
	})
	return b
}

// post sends body to /v1/imports with the given headers and returns the
// status and the decoded answer.
func (b *testBundle) post(t *testing.T, body string, headers map[string]string) (int, map[string]any) {
	t.Helper()
	resp := send(t, b.url, strings.NewReader(body), headers)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var got map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	// Every batch goes into a run, named in the answer; the tests that
	// compare whole answers leave it to TestImportsGoIntoARun.
	if run, ok := got["run"].(string); ok {
		require.NoError(t, results.ValidateRunID(run))
		delete(got, "run")
	}
	return resp.StatusCode, got
}

// send posts body to the intake at url with the given headers; the
// answer's body is closed when the test ends.
func send(t *testing.T, url string, body io.Reader, headers map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/v1/imports", body)
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// pending returns the members waiting in the queue, their run cleared
// after checking each names one.
func (b *testBundle) pending(t *testing.T) map[string]tasks.Payload {
	t.Helper()
	got := testkit.PendingImports(t, b.insp, b.queue)
	for id, p := range got {
		require.NoError(t, results.ValidateRunID(p.Run), "member %s names no run", id)
		p.Run = ""
		got[id] = p
	}
	return got
}

// auth returns the headers of a JSON-array request with the token, and
// extra headers (name, value, …) over them.
func auth(extra ...string) map[string]string {
	h := map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return h
}

func m(i int) tasks.Payload {
	return tasks.Payload{CardID: "pLcard0001", OpenID: fmt.Sprintf("oUserSecret%04d", i), OutRequestNo: fmt.Sprintf("order-%d", i)}
}

func jsonOf(p tasks.Payload) string {
	data, _ := json.Marshal(p)
	return string(data)
}

func TestImportsAuthorization(t *testing.T) {
	t.Parallel()
	b := setup(t, intake.Config{Token: token})
	body := "[" + jsonOf(m(1)) + "]"
	tests := []struct {
		name       string
		headers    map[string]string
		wantStatus int
	}{
		{name: "no header", headers: auth("Authorization", ""), wantStatus: http.StatusUnauthorized},
		{name: "wrong token", headers: auth("Authorization", "Bearer nope"), wantStatus: http.StatusUnauthorized},
		{name: "token as prefix", headers: auth("Authorization", "Bearer "+token+"x"), wantStatus: http.StatusUnauthorized},
		{name: "basic scheme", headers: auth("Authorization", "Basic "+token), wantStatus: http.StatusUnauthorized},
		{name: "bare token", headers: auth("Authorization", token), wantStatus: http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, got := b.post(t, body, tt.headers)
			require.Equal(t, tt.wantStatus, status)
			require.Equal(t, map[string]any{"error": "missing or wrong bearer token (Authorization: Bearer $INTAKE_TOKEN)"}, got)
		})
	}
	require.Empty(t, b.pending(t), "nothing enqueued without the token")

	status, got := b.post(t, body, auth("Authorization", "bearer "+token))
	require.Equal(t, http.StatusOK, status, "the scheme is case-insensitive")
	require.Equal(t, map[string]any{"enqueued": 1.0, "duplicates": 0.0, "invalid": []any{}}, got)
	require.Equal(t, map[string]tasks.Payload{"order-1": m(1)}, b.pending(t))
}

func TestImportsMixedBatch(t *testing.T) {
	t.Parallel()
	// The members as JSON lines, with a blank line after the third and a
	// broken line at the end; sent as JSON lines under either name.
	linesBody := func(ms []string) string {
		return strings.Join(ms[:3], "\n") + "\n\n" + strings.Join(ms[3:], "\n") + "\n{broken\n"
	}
	linesInvalid := []any{
		map[string]any{"index": 2.0, "error": "openid: is required"},
		map[string]any{"index": 5.0, "error": "out_request_no: character '/' at position 6 is not allowed (letters, digits and | _ * - only)"},
		map[string]any{"index": 6.0, "error": "is an array, want a JSON object"},
		map[string]any{"index": 7.0, "error": "openid: is a number, want a string"},
		map[string]any{"index": 9.0, "error": "is not valid JSON: invalid character 'b' looking for beginning of object key string (at byte 2)"},
	}
	tests := []struct {
		name        string
		contentType string
		body        func(members []string) string
		// wantInvalid is the invalid list; indices differ between the
		// two shapes only by the blank line of the JSON-lines body.
		wantInvalid []any
	}{
		{
			name:        "json array",
			contentType: "application/json",
			body:        func(ms []string) string { return "[\n" + strings.Join(ms, ",\n") + "\n]" },
			wantInvalid: []any{
				map[string]any{"index": 2.0, "error": "openid: is required"},
				map[string]any{"index": 4.0, "error": "out_request_no: character '/' at position 6 is not allowed (letters, digits and | _ * - only)"},
				map[string]any{"index": 5.0, "error": "is an array, want a JSON object"},
				map[string]any{"index": 6.0, "error": "openid: is a number, want a string"},
			},
		},
		{
			name:        "json lines",
			contentType: "application/x-ndjson",
			body:        linesBody,
			wantInvalid: linesInvalid,
		},
		{
			name:        "json lines under another name",
			contentType: "application/jsonl",
			body:        linesBody,
			wantInvalid: linesInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, intake.Config{Token: token})
			// order-0 is queued before the request.
			status, _ := b.post(t, "["+jsonOf(m(0))+"]", auth())
			require.Equal(t, http.StatusOK, status)

			noOpenID := m(2)
			noOpenID.OpenID = ""
			badNo := m(4)
			badNo.OutRequestNo = "order/4"
			repeat := m(1)
			repeat.OpenID = "oUserSecretRepeat"
			members := []string{
				jsonOf(m(0)),     // duplicate of the queue
				jsonOf(m(1)),     // enqueued
				jsonOf(noOpenID), // invalid
				jsonOf(m(3)),     // enqueued
				jsonOf(badNo),    // invalid
				`["pLcard0001"]`, // invalid
				`{"card_id":"pLcard0001","openid":7,"out_request_no":"order-6"}`,
				jsonOf(repeat), // duplicate within the request
			}
			status, got := b.post(t, tt.body(members), auth("Content-Type", tt.contentType))
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, map[string]any{"enqueued": 2.0, "duplicates": 2.0, "invalid": tt.wantInvalid}, got)
			require.Equal(t, map[string]tasks.Payload{"order-0": m(0), "order-1": m(1), "order-3": m(3)}, b.pending(t))

			// The access log counts, and shows no openid, token or body.
			logs := b.logs.String()
			require.Contains(t, logs, `"method":"POST","path":"/v1/imports","http_status":200`)
			require.Contains(t, logs, `"enqueued":2,"duplicates":2,"invalid":`)
			require.NotContains(t, logs, "oUserSecret")
			require.NotContains(t, logs, token)
		})
	}
}

func TestImportsRefusedWhole(t *testing.T) {
	t.Parallel()
	b := setup(t, intake.Config{Token: token, MaxBodyBytes: 4096, MaxMembers: 3})
	four := "[" + strings.Join([]string{jsonOf(m(1)), jsonOf(m(2)), jsonOf(m(3)), jsonOf(m(4))}, ",") + "]"
	tests := []struct {
		name        string
		body        string
		contentType string
		wantStatus  int
		wantError   string
	}{
		{name: "empty", body: " \n", wantStatus: 400, wantError: "empty body: want a JSON array of members or JSON lines"},
		{name: "broken array", body: "[" + jsonOf(m(1)) + ",{", wantStatus: 400, wantError: "not a JSON array: member 1: unexpected EOF"},
		{name: "array without its end", body: "[" + jsonOf(m(1)), wantStatus: 400, wantError: "not a JSON array: EOF"},
		{name: "data after the array", body: "[" + jsonOf(m(1)) + "] []", wantStatus: 400, wantError: "not a JSON array: data after its closing ]"},
		{name: "object as application/json", body: jsonOf(m(1)), contentType: "application/json", wantStatus: 400, wantError: "an application/json body must be a JSON array of members; send JSON lines as application/x-ndjson"},
		{name: "too many members", body: four, wantStatus: 413, wantError: "more than 3 members; split the batch"},
		{name: "too many lines", body: strings.Join([]string{jsonOf(m(1)), jsonOf(m(2)), jsonOf(m(3)), jsonOf(m(4))}, "\n"), contentType: "application/x-ndjson", wantStatus: 413, wantError: "more than 3 members; split the batch"},
		{name: "JSON lines as application/json", body: jsonOf(m(1)) + "\n" + jsonOf(m(2)), contentType: "application/json", wantStatus: 400, wantError: "an application/json body must be a JSON array of members; send JSON lines as application/x-ndjson"},
		{name: "too large", body: "[" + strings.Repeat(" ", 5000) + "]", wantStatus: 413, wantError: "body is larger than 4096 bytes; split the batch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			headers := auth()
			if tt.contentType != "" {
				headers["Content-Type"] = tt.contentType
			}
			status, got := b.post(t, tt.body, headers)
			require.Equal(t, tt.wantStatus, status)
			require.Equal(t, map[string]any{"error": tt.wantError}, got)
		})
	}
	require.Empty(t, b.pending(t), "a request refused whole enqueues nobody")
}

func TestImportsTooLargeWhileStreaming(t *testing.T) {
	// No Content-Length: the limit is met while reading.
	t.Parallel()
	b := setup(t, intake.Config{Token: token, MaxBodyBytes: 1024})
	pr, pw := io.Pipe()
	go func() {
		_, _ = pw.Write([]byte("[" + strings.Repeat(" ", 2048)))
		_ = pw.Close()
	}()
	resp := send(t, b.url, pr, auth())
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	b := setup(t, intake.Config{Token: token})
	resp, err := http.Get(b.url + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.JSONEq(t, `{"status":"ok"}`, string(body))

	resp, err = http.Get(b.url + "/v1/imports")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// TestNewRefusesNoTokenOffLoopback: an intake other hosts can reach needs
// a token of MinTokenBytes or more.
func TestNewRefusesNoTokenOffLoopback(t *testing.T) {
	t.Parallel()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	producer, err := tasks.NewProducer(client)
	require.NoError(t, err)
	tests := []struct {
		name    string
		addr    string
		token   string
		wantErr error
		wantMsg string
	}{
		{name: "every interface", addr: ":8080", wantErr: intake.ErrNoToken},
		{name: "wildcard", addr: "0.0.0.0:8080", wantErr: intake.ErrNoToken},
		{name: "ipv6 wildcard", addr: "[::]:8080", wantErr: intake.ErrNoToken},
		{name: "a routable address", addr: "192.0.2.10:8080", wantErr: intake.ErrNoToken},
		{name: "loopback", addr: "127.0.0.1:8080"},
		{name: "ipv6 loopback", addr: "[::1]:8080"},
		{name: "localhost", addr: "localhost:8080"},
		{name: "every interface with a token", addr: ":8080", token: token},
		{name: "one-byte token on every interface", addr: "0.0.0.0:8080", token: "x", wantErr: intake.ErrShortToken},
		{name: "15-byte token on every interface", addr: ":8080", token: strings.Repeat("x", 15), wantErr: intake.ErrShortToken},
		{name: "short token padded to 18 bytes", addr: ":8080", token: "  " + strings.Repeat("x", 14) + "  ", wantErr: intake.ErrShortToken},
		{name: "16-byte token on every interface", addr: ":8080", token: strings.Repeat("x", 16)},
		{name: "short token on loopback", addr: "127.0.0.1:8080", token: "x"},
		{name: "white space only", addr: "127.0.0.1:8080", token: " \n", wantMsg: "INTAKE_TOKEN: holds only white space"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := intake.New(context.Background(), intake.Config{Addr: tt.addr, Token: tt.token, Producer: producer, Store: newStore(t, asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, tasks.DefaultQueue)})
			switch {
			case tt.wantMsg != "":
				require.EqualError(t, err, tt.wantMsg)
			case tt.wantErr == nil:
				require.NoError(t, err)
			default:
				require.ErrorIs(t, err, tt.wantErr)
				require.NotContains(t, err.Error(), "xxxx", "the token is not shown")
			}
		})
	}
}

func TestServeRefusesNoTokenOnNonLoopbackListener(t *testing.T) {
	t.Parallel()
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = client.Close() })
	producer, err := tasks.NewProducer(client)
	require.NoError(t, err)
	srv, err := intake.New(context.Background(), intake.Config{Addr: "127.0.0.1:0", Producer: producer, Store: newStore(t, asynq.RedisClientOpt{Addr: "127.0.0.1:1"}, tasks.DefaultQueue)})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	require.ErrorIs(t, srv.Serve(context.Background(), ln), intake.ErrNoToken)
}

func TestNoTokenOnLoopbackNeedsNoHeader(t *testing.T) {
	t.Parallel()
	b := setup(t, intake.Config{})
	status, got := b.post(t, jsonOf(m(1))+"\n", map[string]string{"Content-Type": "application/x-ndjson"})
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]any{"enqueued": 1.0, "duplicates": 0.0, "invalid": []any{}}, got)
}

func TestGracefulShutdown(t *testing.T) {
	// A request in flight when the server is told to stop is answered in
	// full; new connections are refused; Serve returns nil.
	t.Parallel()
	b := setup(t, intake.Config{Token: token})
	addr := strings.TrimPrefix(b.url, "http://")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(60*time.Second)))
	body := "[" + jsonOf(m(1)) + "," + jsonOf(m(2)) + "]"
	// "Expect: 100-continue" makes the server say when the handler starts
	// reading the body: from then on the request is in flight.
	_, err = fmt.Fprintf(conn, "POST /v1/imports HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", token, len(body))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", status)
	_, err = br.ReadString('\n')
	require.NoError(t, err)

	b.stop()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	}, 20*time.Second, 10*time.Millisecond, "the listener is closed once shutdown begins")

	_, err = io.WriteString(conn, body)
	require.NoError(t, err)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got intake.Response
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.NotEmpty(t, got.Run)
	got.Run = ""
	require.Equal(t, intake.Response{Enqueued: 2, Invalid: []intake.Invalid{}}, got)

	select {
	case err := <-b.served:
		require.NoError(t, err)
		b.served <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	require.Len(t, b.pending(t), 2)
	require.Contains(t, b.logs.String(), `"message":"intake stopped"`)
}

func TestRedisGone(t *testing.T) {
	// Only an embedded Redis can be stopped by a test.
	t.Parallel()
	mr := miniredis.RunT(t)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: mr.Addr(), DialTimeout: time.Second})
	t.Cleanup(func() { _ = client.Close() })
	producer, err := tasks.NewProducer(client)
	require.NoError(t, err)
	logs := &testkit.Buffer{}
	srv, err := intake.New(context.Background(), intake.Config{Token: token, Producer: producer, Store: newStore(t, asynq.RedisClientOpt{Addr: mr.Addr(), DialTimeout: time.Second}, tasks.DefaultQueue), Logger: zerolog.New(logs)})
	require.NoError(t, err)
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	mr.Close()

	resp := send(t, ts.URL, strings.NewReader(jsonOf(m(1))+"\n"+`{"openid":"x"}`), auth("Content-Type", "application/x-ndjson"))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, "5", resp.Header.Get("Retry-After"), "a 503 says when to come back")
	var got intake.Response
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	require.NotEmpty(t, got.Run)
	got.Run = ""
	require.Equal(t, intake.Response{
		Invalid: []intake.Invalid{{Index: 1, Error: "card_id: is required"}},
		Error:   "the queue cannot be reached; send the request again: members already enqueued come back as duplicates",
	}, got)

	health, err := http.Get(ts.URL + "/healthz")
	require.NoError(t, err)
	health.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, health.StatusCode)
	require.Equal(t, "5", health.Header.Get("Retry-After"))
	require.Contains(t, logs.String(), `"level":"error","method":"POST","path":"/v1/imports","http_status":503`)
	require.NotContains(t, logs.String(), "oUserSecret")
}

// FuzzImports feeds the intake arbitrary bodies: it must answer each with
// 200, 400 or 413 and a JSON body, and count every member it was given.
func FuzzImports(f *testing.F) {
	for _, seed := range []struct {
		body  string
		lines bool
	}{
		{"[" + jsonOf(m(1)) + "]", false},
		{jsonOf(m(1)) + "\n{\"openid\":1}\n\n[]", true},
		{`[{"card_id":"c","openid":"o","out_request_no":"n"},{"card_id":null},[],1,"x"]`, false},
		{`[{"card_id":"c","openid":"o\ud800","openid":"p","out_request_no":"n"}]`, false},
		{`{"card_id":"c","openid":"o\udc00","out_request_no":"n"}` + "\n" + `{"code":"1","code":"2"}`, true},
		{`[1,`, false},
		{"\xff\xfe", true},
	} {
		f.Add([]byte(seed.body), seed.lines)
	}
	mr := miniredis.RunT(f)
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: mr.Addr()})
	f.Cleanup(func() { _ = client.Close() })
	producer, err := tasks.NewProducer(client)
	require.NoError(f, err)
	store, err := deadletter.New(asynq.RedisClientOpt{Addr: mr.Addr()}, tasks.DefaultQueue)
	require.NoError(f, err)
	f.Cleanup(func() { _ = store.Close() })
	srv, err := intake.New(context.Background(), intake.Config{Token: token, Producer: producer, Store: store, MaxBodyBytes: 1 << 16, MaxMembers: 100})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte, lines bool) {
		req := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/v1/imports", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if lines {
			req.Header.Set("Content-Type", "application/x-ndjson")
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var got intake.Response
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			require.NotNil(t, got.Invalid)
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var got map[string]string
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
			require.NotEmpty(t, got["error"])
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}

func TestImportsInFlightBound(t *testing.T) {
	// Batches beyond MaxInFlight are turned away before their body is
	// read, so the intake's memory stays bounded; the one in flight is
	// not disturbed, and the next after it is taken.
	t.Parallel()
	b := setup(t, intake.Config{Token: token, MaxInFlight: 1})
	conn, err := net.Dial("tcp", strings.TrimPrefix(b.url, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(60*time.Second)))
	body := "[" + jsonOf(m(1)) + "]"
	_, err = fmt.Fprintf(conn, "POST /v1/imports HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", token, len(body))
	require.NoError(t, err)
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 100 Continue\r\n", status, "the first batch holds the only slot")
	_, err = br.ReadString('\n')
	require.NoError(t, err)

	res := send(t, b.url, strings.NewReader("["+jsonOf(m(2))+"]"), auth())
	answer, _ := io.ReadAll(res.Body)
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode, "%s", answer)
	require.Equal(t, "1", res.Header.Get("Retry-After"))
	require.Contains(t, string(answer), "1 batches are being handled already")

	_, err = io.WriteString(conn, body)
	require.NoError(t, err)
	first, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	first.Body.Close()
	require.Equal(t, http.StatusOK, first.StatusCode)

	code, got := b.post(t, "["+jsonOf(m(2))+"]", auth())
	require.Equal(t, http.StatusOK, code, "the slot is free again: %v", got)
	require.Equal(t, 1.0, got["enqueued"])
	require.Len(t, b.pending(t), 2)
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }
