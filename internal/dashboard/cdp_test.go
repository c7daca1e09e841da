package dashboard_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// chrome is headless Chromium driven over the DevTools protocol through
// --remote-debugging-pipe: JSON messages ended by a NUL byte, written to
// its fd 3 and read from its fd 4. No WebSocket, no library: the test
// needs nothing but Debian's chromium package.
type chrome struct {
	t       *testing.T
	session string // the page's flat session
	in      *os.File
	mu      sync.Mutex
	nextID  int
	replies map[int]chan cdpMessage
	stderr  *strings.Builder
}

type cdpMessage struct {
	ID     int             `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startChrome starts chromium with a blank page of width × height CSS
// pixels, and stops it when the test ends.
func startChrome(t *testing.T, chromium string, width, height int) *chrome {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	// Chromium reads commands from cmdR (its fd 3) and writes to outW
	// (its fd 4).
	cmdR, cmdW, err := os.Pipe()
	require.NoError(t, err)
	outR, outW, err := os.Pipe()
	require.NoError(t, err)
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
		"--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	c := &chrome{t: t, in: cmdW, replies: map[int]chan cdpMessage{}, stderr: &strings.Builder{}}
	cmd.Stderr = syncWriter{mu: &c.mu, b: c.stderr}
	require.NoError(t, cmd.Start())
	_ = cmdR.Close()
	_ = outW.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.read(outR)
	}()
	t.Cleanup(func() {
		_ = cmdW.Close() // Chromium exits when its pipe closes
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
		}
		cancel()
		_ = cmd.Wait()
		_ = outR.Close()
	})

	var target struct{ TargetID string }
	c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	c.session = attached.SessionID
	c.do("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false})
	c.do("Network.enable", nil)
	return c
}

type syncWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// read hands each reply to its caller; events are not needed (the test
// polls the page).
func (c *chrome) read(out *os.File) {
	r := bufio.NewReader(out)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			return
		}
		var m cdpMessage
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
			continue
		}
		c.mu.Lock()
		ch := c.replies[m.ID]
		delete(c.replies, m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends a command to the browser (session "") or a page, and decodes
// its result into result when not nil.
func (c *chrome) call(session, method string, params, result any) {
	c.t.Helper()
	c.mu.Lock()
	c.nextID++
	id := c.nextID
	ch := make(chan cdpMessage, 1)
	c.replies[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	require.NoError(c.t, err)
	_, err = c.in.Write(append(data, 0))
	require.NoError(c.t, err, "chromium: %s", c.log())
	select {
	case m := <-ch:
		require.Nil(c.t, m.Error, "%s: %+v", method, m.Error)
		if result != nil {
			require.NoError(c.t, json.Unmarshal(m.Result, result), "%s", method)
		}
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s: no answer within 30s; chromium: %s", method, c.log())
	}
}

// do sends a command to the page.
func (c *chrome) do(method string, params any) { c.t.Helper(); c.call(c.session, method, params, nil) }

func (c *chrome) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stderr.String()
}

// eval evaluates a JavaScript expression in the page into v.
func (c *chrome) eval(expr string, v any) {
	c.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	c.call(c.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res)
	require.Nil(c.t, res.ExceptionDetails, "%s", expr)
	require.NoError(c.t, json.Unmarshal(res.Result.Value, v), "%s: %s", expr, res.Result.Value)
}

// navigate loads url and waits for it.
func (c *chrome) navigate(url string) {
	c.t.Helper()
	c.do("Page.navigate", map[string]any{"url": url})
	c.waitFor(fmt.Sprintf("location.href === %q && document.readyState === 'complete'", url))
}

// waitFor polls until the JavaScript condition holds in the page.
func (c *chrome) waitFor(cond string) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ok bool
		c.eval("!!("+cond+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var href string
			c.eval("location.href", &href)
			c.t.Fatalf("page %s: %s did not hold within 30s", href, cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// click presses the left mouse button on the middle of the element the CSS
// selector finds (of its first line, for a link that wraps), as a person
// would: the browser sends what the element
// does (a link's GET, a form's POST) with its own headers and cookies.
func (c *chrome) click(selector string) {
	c.t.Helper()
	var at []float64
	c.eval(fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) return null;
		e.scrollIntoView({block: "center"}); const r = e.getClientRects()[0];
		return [r.x + r.width / 2, r.y + r.height / 2]; })()`, selector), &at)
	require.Len(c.t, at, 2, "no element %s", selector)
	for _, typ := range []string{"mouseMoved", "mousePressed", "mouseReleased"} {
		c.do("Input.dispatchMouseEvent", map[string]any{"type": typ, "x": at[0], "y": at[1], "button": "left", "clickCount": 1})
	}
}

// screenshot writes a PNG of the whole page to path.
func (c *chrome) screenshot(path string, width int) {
	c.t.Helper()
	var height int
	c.eval("Math.ceil(document.documentElement.scrollHeight)", &height)
	c.do("Emulation.setDeviceMetricsOverride", map[string]any{"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false})
	c.eval("(() => { window.scrollTo(0, 0); return true })()", new(bool))
	var shot struct{ Data string }
	c.call(c.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	require.NoError(c.t, err)
	require.NoError(c.t, os.WriteFile(path, png, 0o644))
}
