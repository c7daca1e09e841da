package redisconntest

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/cardimport/cardimport/internal/redisconn"
)

// NodeTimeout is the test clusters' cluster-node-timeout: a master silent
// that long is suspected, and its replica starts an election once most
// masters agree. Production clusters keep it at a few seconds (the
// default is 15 s).
const NodeTimeout = 1000 * time.Millisecond

// busOffset is how far above a node's port its cluster bus listens.
const busOffset = 10000

// Cluster is a Redis Cluster of the test's own.
type Cluster struct {
	Nodes []*Server
	// URL is the redis-cluster:// URL naming every node.
	URL string
	// Opt is URL parsed as the worker parses it.
	Opt asynq.RedisConnOpt
}

// ClusterNode is one line of CLUSTER NODES.
type ClusterNode struct {
	ID, Addr string
	Master   bool
	// MasterID is a replica's master.
	MasterID string
	// Failed is set for a node the cluster holds failed (fail or fail?).
	Failed bool
	// Slots are a master's slot ranges as CLUSTER NODES writes them.
	Slots []string
}

// StartCluster starts masters×(1+replicas) nodes with extra args added
// to each node's command line, joins them with `redis-cli --cluster
// create`, and waits until every node reports the cluster ok.
// cluster-require-full-coverage is off, as docs/deployment.md advises:
// while one master's slots are being failed over, the other masters go on
// serving theirs.
func StartCluster(tb testing.TB, masters, replicas int, args ...string) *Cluster {
	tb.Helper()
	return startCluster(tb, masters, replicas, nil, args)
}

// StartClusterTLS is StartCluster with every node speaking TLS only (to
// clients, replicas and the cluster bus), with certificates of t. Its URL
// is rediss-cluster://, and Opt trusts t's CA.
func StartClusterTLS(tb testing.TB, masters, replicas int, t *TLS, args ...string) *Cluster {
	tb.Helper()
	return startCluster(tb, masters, replicas, t, args)
}

func startCluster(tb testing.TB, masters, replicas int, t *TLS, args []string) *Cluster {
	tb.Helper()
	cli := lookPath(tb, "redis-cli")
	c := &Cluster{}
	var addrs []string
	for range masters * (1 + replicas) {
		// The cluster bus listens on the port + 10000: both below the
		// ephemeral range.
		s := newServerOn(tb, sparePort(tb, 20000, 22700, busOffset))
		listen := []string{"--port", strconv.Itoa(s.Port)}
		if t != nil {
			s.tls = t
			listen = t.serverArgs(strconv.Itoa(s.Port))
		}
		s.args = append([]string{lookPath(tb, "redis-server")}, listen...)
		s.args = append(s.args, "--bind", "127.0.0.1", "--dir", s.Dir,
			"--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(NodeTimeout.Milliseconds(), 10),
			"--cluster-require-full-coverage", "no")
		s.args = append(s.args, args...)
		s.Start(tb)
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr)
	}
	create := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if t != nil {
		create = append(create, "--tls", "--cacert", t.CA)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, create...).CombinedOutput(); err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := waitFor(30*time.Second, func() error {
		for _, s := range c.Nodes {
			v, err := s.Do(context.Background(), "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			info := fmt.Sprint(v)
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))+"\r") {
				return fmt.Errorf("%s: not ok yet", s.Addr)
			}
		}
		// Every replica attached and in sync.
		nodes, err := c.ClusterNodes()
		if err != nil {
			return err
		}
		n := 0
		for _, node := range nodes {
			if !node.Master {
				n++
			}
		}
		if n != masters*replicas {
			return fmt.Errorf("%d of %d replicas attached", n, masters*replicas)
		}
		for _, s := range c.Nodes {
			v, err := s.Do(context.Background(), "ROLE")
			if err != nil {
				return err
			}
			if role, ok := v.([]any); ok && len(role) >= 4 && role[0] == "slave" && role[3] != "connected" {
				return fmt.Errorf("replica %s: %v", s.Addr, role[3])
			}
		}
		return nil
	}); err != nil {
		tb.Fatalf("cluster: %v", err)
	}
	c.URL = "redis-cluster://" + strings.Join(addrs, ",")
	if t != nil {
		c.URL = "rediss-cluster://" + strings.Join(addrs, ",")
	}
	opt, err := redisconn.Parse("REDIS_URL", c.URL)
	if err != nil {
		tb.Fatal(err)
	}
	if co, ok := opt.(redisconn.ClusterOpt); ok && t != nil {
		// The URL's TLS trusts the system's CAs; the test's clients
		// trust the test's.
		co.TLSConfig = t.Config
		opt = co
	}
	c.Opt = opt
	return c
}

// ClusterNodes reads CLUSTER NODES from the first node that answers.
func (c *Cluster) ClusterNodes() ([]ClusterNode, error) {
	var last error
	for _, s := range c.Nodes {
		v, err := s.Do(context.Background(), "CLUSTER", "NODES")
		if err != nil {
			last = err
			continue
		}
		return parseClusterNodes(fmt.Sprint(v)), nil
	}
	return nil, last
}

// parseClusterNodes reads CLUSTER NODES: id addr@bus flags master-id
// ping pong epoch link slot….
func parseClusterNodes(text string) []ClusterNode {
	var nodes []ClusterNode
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		flags := f[2]
		n := ClusterNode{ID: f[0], Addr: addr, Master: strings.Contains(flags, "master"),
			Failed: strings.Contains(flags, "fail")}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		if len(f) > 8 {
			n.Slots = f[8:]
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// Slot is the hash slot of key, asked of the cluster.
func (c *Cluster) Slot(tb testing.TB, key string) int {
	tb.Helper()
	for _, s := range c.Nodes {
		if v, err := s.Do(context.Background(), "CLUSTER", "KEYSLOT", key); err == nil {
			return int(v.(int64))
		}
	}
	tb.Fatalf("no node answers CLUSTER KEYSLOT")
	return 0
}

// MasterOfSlot is the server that serves slot now, as the nodes that are
// not failed see it.
func (c *Cluster) MasterOfSlot(tb testing.TB, slot int) *Server {
	tb.Helper()
	nodes, err := c.ClusterNodes()
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range nodes {
		if n.Master && !n.Failed && coversSlot(n.Slots, slot) {
			return c.Server(tb, n.Addr)
		}
	}
	tb.Fatalf("no master serves slot %d", slot)
	return nil
}

// Server is the node at addr.
func (c *Cluster) Server(tb testing.TB, addr string) *Server {
	tb.Helper()
	for _, s := range c.Nodes {
		if s.Addr == addr {
			return s
		}
	}
	tb.Fatalf("%s is none of the cluster's nodes", addr)
	return nil
}

// Masters are the nodes serving slots now.
func (c *Cluster) Masters(tb testing.TB) []*Server {
	tb.Helper()
	nodes, err := c.ClusterNodes()
	if err != nil {
		tb.Fatal(err)
	}
	var out []*Server
	for _, n := range nodes {
		if n.Master && !n.Failed && len(n.Slots) > 0 {
			out = append(out, c.Server(tb, n.Addr))
		}
	}
	return out
}

// WaitTakenOver waits until a node other than old serves slot and answers
// writes for it; it returns that node.
func (c *Cluster) WaitTakenOver(tb testing.TB, old *Server, slot int, timeout time.Duration) *Server {
	tb.Helper()
	var got *Server
	err := waitFor(timeout, func() error {
		for _, s := range c.Nodes {
			if s == old {
				continue
			}
			v, err := s.Do(context.Background(), "CLUSTER", "NODES")
			if err != nil {
				continue
			}
			for _, n := range parseClusterNodes(fmt.Sprint(v)) {
				if !n.Master || n.Failed || n.Addr == old.Addr || !coversSlot(n.Slots, slot) {
					continue
				}
				got = c.Server(tb, n.Addr)
				return nil
			}
		}
		return fmt.Errorf("slot %d is still %s's", slot, old.Addr)
	})
	if err != nil {
		tb.Fatalf("no replica took over within %s: %v", timeout, err)
	}
	return got
}

func coversSlot(ranges []string, slot int) bool {
	for _, r := range ranges {
		lo, hi, found := strings.Cut(r, "-")
		if !found {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && a <= slot && slot <= b {
			return true
		}
	}
	return false
}

// Slot is the cluster hash slot of key: CRC16 (XMODEM) of its hash tag
// (what stands between the first '{' and the next '}', when not empty)
// or of the whole key, modulo 16384.
func Slot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}

// SpreadQueues returns one queue name per master, named
// prefix-a-N, prefix-b-N, …: real queue names spread over the masters by
// their hash, a test or benchmark picks names that land one a master.
func (c *Cluster) SpreadQueues(tb testing.TB, prefix string) []string {
	tb.Helper()
	nodes, err := c.ClusterNodes()
	if err != nil {
		tb.Fatal(err)
	}
	var masters []ClusterNode
	for _, n := range nodes {
		if n.Master && !n.Failed && len(n.Slots) > 0 {
			masters = append(masters, n)
		}
	}
	taken := map[string]bool{}
	var names []string
	for i := 0; len(names) < len(masters) && i < 100000; i++ {
		name := fmt.Sprintf("%s-%c-%d", prefix, 'a'+len(names), i)
		for _, m := range masters {
			if !taken[m.ID] && coversSlot(m.Slots, Slot(name)) {
				taken[m.ID] = true
				names = append(names, name)
			}
		}
	}
	if len(names) != len(masters) {
		tb.Fatalf("no queue names for all %d masters", len(masters))
	}
	return names
}
