package redisconntest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/cardimport/cardimport/internal/redisconn"
)

// SentinelMaster is the name the sentinels of StartSentinel monitor.
const SentinelMaster = "imports"

// Sentinel timings: a master silent for DownAfter is down for a sentinel;
// a quorum of two agreeing, one of them promotes a replica. Production
// deployments keep down-after-milliseconds at a few seconds (the default,
// 30 s, is half a minute without a queue); the test's are shorter still
// so that a run takes seconds.
const (
	DownAfter       = 1000 * time.Millisecond
	FailoverTimeout = 5000 * time.Millisecond
)

// SentinelConfig shapes a Sentinel group.
type SentinelConfig struct {
	// Replicas and Sentinels are how many of each the master gets.
	Replicas, Sentinels int
	// Args are added to every Redis server's command line (not the
	// sentinels').
	Args []string
	// Proxy puts a Proxy in front of the first master: the sentinels,
	// the replicas and the clients reach it through the proxy, which can
	// stall the replication links.
	Proxy bool
	// TLS, when set, has every server and sentinel speak TLS only (no
	// plain port; replication and the sentinels' links on TLS too), and
	// the URL is rediss-sentinel://.
	TLS *TLS
}

// Sentinel is a Sentinel group: Servers[0] is the first master, the rest
// its replicas; Sentinels watch it under SentinelMaster.
type Sentinel struct {
	Servers   []*Server
	Sentinels []*Server
	// Proxy fronts Servers[0] when the config asked for one.
	Proxy *Proxy
	// URL is the redis-sentinel:// URL of the group, database 0
	// (rediss-sentinel:// with TLS).
	URL string
	// Opt is URL parsed as the worker parses it, trusting the TLS's CA.
	Opt asynq.RedisConnOpt
	tls *TLS
}

// StartSentinel starts a master, its replicas and sentinels (quorum 2, or
// 1 with a single sentinel), and waits until every sentinel knows every
// replica and the other sentinels.
func StartSentinel(tb testing.TB, cfg SentinelConfig) *Sentinel {
	tb.Helper()
	replicas, sentinels, args := cfg.Replicas, cfg.Sentinels, cfg.Args
	sg := &Sentinel{tls: cfg.TLS}
	master := startServer(tb, cfg.TLS, args...)
	sg.Servers = append(sg.Servers, master)
	masterPort := master.Port
	if cfg.Proxy {
		sg.Proxy = StartProxy(tb, master.Addr)
		_, port, _ := strings.Cut(sg.Proxy.Addr, ":")
		masterPort, _ = strconv.Atoi(port)
	}
	for range replicas {
		sg.Servers = append(sg.Servers, startServer(tb, cfg.TLS, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(masterPort)}, args...)...))
	}
	// Every replica in sync before the sentinels come: a sentinel that
	// finds the master with no replica in sync could not promote one.
	if err := waitFor(startTimeout, func() error {
		info, err := master.Do(context.Background(), "INFO", "replication")
		if err != nil {
			return err
		}
		if n := strings.Count(fmt.Sprint(info), ",state=online,"); n != replicas {
			return fmt.Errorf("%d of %d replicas online", n, replicas)
		}
		return nil
	}); err != nil {
		tb.Fatalf("sentinel group: %v", err)
	}
	quorum := min(2, sentinels)
	var addrs []string
	for range sentinels {
		s := startSentinelProcess(tb, masterPort, quorum, cfg.TLS)
		sg.Sentinels = append(sg.Sentinels, s)
		addrs = append(addrs, s.Addr)
	}
	scheme := "redis-sentinel://"
	if cfg.TLS != nil {
		scheme = "rediss-sentinel://"
	}
	sg.URL = scheme + strings.Join(addrs, ",") + "/0?master=" + SentinelMaster
	opt, err := redisconn.Parse("REDIS_URL", sg.URL)
	if err != nil {
		tb.Fatal(err)
	}
	if fo, ok := opt.(redisconn.FailoverOpt); ok && cfg.TLS != nil {
		// The URL's TLS trusts the system's CAs; the test's clients
		// trust the test's.
		fo.TLSConfig = cfg.TLS.Config
		opt = fo
	}
	sg.Opt = opt
	for _, s := range sg.Sentinels {
		if err := waitFor(startTimeout, func() error {
			m, err := sentinelMasterInfo(s)
			if err != nil {
				return err
			}
			if m["num-slaves"] != strconv.Itoa(replicas) || m["num-other-sentinels"] != strconv.Itoa(sentinels-1) {
				return fmt.Errorf("sentinel %s knows %s replicas and %s other sentinels", s.Addr, m["num-slaves"], m["num-other-sentinels"])
			}
			return nil
		}); err != nil {
			tb.Fatalf("sentinel group: %v", err)
		}
	}
	return sg
}

// startSentinelProcess runs one sentinel watching the master on port.
func startSentinelProcess(tb testing.TB, masterPort, quorum int, t *TLS) *Server {
	tb.Helper()
	s := newServer(tb)
	conf := filepath.Join(s.Dir, "sentinel.conf")
	m := SentinelMaster
	listen := fmt.Sprintf("port %d\n", s.Port)
	if t != nil {
		// tls-replication: the sentinel's links to the servers and to
		// the other sentinels are TLS too.
		s.tls = t
		listen = fmt.Sprintf("port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\ntls-replication yes\n", s.Port, t.Cert, t.Key, t.CA)
	}
	text := listen + fmt.Sprintf("bind 127.0.0.1\ndir %s\n", s.Dir) +
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d\n", m, masterPort, quorum) +
		fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", m, DownAfter.Milliseconds()) +
		fmt.Sprintf("sentinel failover-timeout %s %d\n", m, FailoverTimeout.Milliseconds()) +
		fmt.Sprintf("sentinel parallel-syncs %s 2\n", m)
	// A sentinel rewrites its configuration file: it must be writable.
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	// Debian's redis-sentinel package; redis-server --sentinel is the
	// same program.
	if bin, err := exec.LookPath("redis-sentinel"); err == nil {
		s.args = []string{bin, conf}
	} else {
		s.args = []string{lookPath(tb, "redis-server"), conf, "--sentinel"}
	}
	s.Start(tb)
	return s
}

// sentinelMasterInfo is SENTINEL MASTER's answer as a map.
func sentinelMasterInfo(s *Server) (map[string]string, error) {
	v, err := s.Do(context.Background(), "SENTINEL", "MASTER", SentinelMaster)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	switch x := v.(type) {
	case []any:
		for i := 0; i+1 < len(x); i += 2 {
			m[fmt.Sprint(x[i])] = fmt.Sprint(x[i+1])
		}
	case map[any]any:
		for k, val := range x {
			m[fmt.Sprint(k)] = fmt.Sprint(val)
		}
	}
	return m, nil
}

// MasterAddr is the master's address as the first sentinel that answers
// names it.
func (sg *Sentinel) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, s := range sg.Sentinels {
		opt := &redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second}
		if sg.tls != nil {
			opt.TLSConfig = sg.tls.Config
		}
		c := redis.NewSentinelClient(opt)
		addr, err := c.GetMasterAddrByName(ctx, SentinelMaster).Result()
		_ = c.Close()
		if err == nil && len(addr) == 2 {
			return addr[0] + ":" + addr[1], nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names the master: %w", last)
}

// Master is the server the sentinels name master.
func (sg *Sentinel) Master(tb testing.TB) *Server {
	tb.Helper()
	addr, err := sg.MasterAddr(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	if s := sg.server(addr); s != nil {
		return s
	}
	tb.Fatalf("the sentinels name %s, none of the group's servers", addr)
	return nil
}

// server is the group's server at addr (the proxy's is the first
// master's), nil for none.
func (sg *Sentinel) server(addr string) *Server {
	if sg.Proxy != nil && addr == sg.Proxy.Addr {
		return sg.Servers[0]
	}
	for _, s := range sg.Servers {
		if s.Addr == addr {
			return s
		}
	}
	return nil
}

// WaitPromoted waits until the sentinels name a master other than old
// and that server answers as a master; it returns the new master.
func (sg *Sentinel) WaitPromoted(tb testing.TB, old *Server, timeout time.Duration) *Server {
	tb.Helper()
	var promoted *Server
	err := waitFor(timeout, func() error {
		addr, err := sg.MasterAddr(context.Background())
		if err != nil {
			return err
		}
		s := sg.server(addr)
		switch {
		case s == nil:
			return fmt.Errorf("the sentinels name %s, none of the group's servers", addr)
		case s == old:
			return fmt.Errorf("the sentinels still name %s", addr)
		}
		v, err := s.Do(context.Background(), "ROLE")
		if err != nil {
			return err
		}
		if role, ok := v.([]any); !ok || len(role) == 0 || role[0] != "master" {
			return fmt.Errorf("%s is named master but answers ROLE %v", addr, v)
		}
		promoted = s
		return nil
	})
	if err != nil {
		tb.Fatalf("no replica promoted within %s: %v", timeout, err)
	}
	return promoted
}
