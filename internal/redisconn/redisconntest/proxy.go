package redisconntest

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Proxy forwards TCP connections from its own loopback port to a server,
// and can stall the replication links among them (both ways) while the
// clients' connections carry on: a replica on a congested link, which one
// host's loopback never is. A replica's kernel buffers take in a stream
// sent to a stopped process, so stopping the replica does not hold the
// stream back; the proxy does, in its own memory, and Close drops what it
// held, as a link dropping with the master does.
type Proxy struct {
	// Addr is the proxy's address, which clients and replicas dial.
	Addr   string
	target string
	ln     net.Listener

	mu     sync.Mutex
	cond   *sync.Cond
	stall  bool
	closed bool
	conns  []net.Conn
}

// StartProxy listens on a spare loopback port and forwards to target. The
// test's cleanup closes it.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln}
	p.cond = sync.NewCond(&p.mu)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// StallReplication holds every byte of the replication links, either
// way, until Close.
func (p *Proxy) StallReplication() {
	p.mu.Lock()
	p.stall = true
	p.mu.Unlock()
}

// Close stops the proxy, closes every connection and drops whatever it
// held.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	conns := p.conns
	p.conns = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	_ = p.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		l := &link{p: p}
		go l.pipe(server, client, true)
		go l.pipe(client, server, false)
	}
}

// track keeps the connections for Close; false once closed.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	p.conns = append(p.conns, conns...)
	return true
}

// link is one proxied connection; it is a replication link once its
// client has sent PSYNC or SYNC.
type link struct {
	p  *Proxy
	mu sync.Mutex
	// replication is set once the client asked for the replication
	// stream.
	replication bool
}

func (l *link) isReplication() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.replication
}

// pipe copies src to dst; fromClient marks the client's direction, where
// PSYNC shows the link is a replica's.
func (l *link) pipe(dst, src net.Conn, fromClient bool) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient && !l.isReplication() && (bytes.Contains(bytes.ToUpper(buf[:n]), []byte("PSYNC")) || bytes.Contains(bytes.ToUpper(buf[:n]), []byte("\r\nSYNC\r\n"))) {
				l.mu.Lock()
				l.replication = true
				l.mu.Unlock()
			}
			if !l.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wait blocks while replication is stalled and this is a replication
// link; false once the proxy is closed.
func (l *link) wait() bool {
	p := l.p
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.stall && !p.closed && l.isReplication() {
		p.cond.Wait()
	}
	return !p.closed
}
