package redisconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
)

// multiHost is a URL naming several servers, as
// scheme://[user[:password]@]host:port[,host:port…][/path][?query]: Go's
// url.Parse does not take a list of hosts, and its errors quote the whole
// URL, password included.
type multiHost struct {
	scheme, username, password string
	addrs                      []string
	path                       string
	query                      url.Values
}

// parseMultiHost splits raw. Its errors never hold the user or password.
func parseMultiHost(raw string) (multiHost, error) {
	var m multiHost
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return m, errors.New("missing scheme://")
	}
	m.scheme = scheme
	rest, rawQuery, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	m.path = path
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		user, password, _ := strings.Cut(userinfo, ":")
		var err error
		if m.username, err = url.PathUnescape(user); err != nil {
			return m, errors.New("user: invalid percent-encoding")
		}
		if m.password, err = url.PathUnescape(password); err != nil {
			return m, errors.New("password: invalid percent-encoding")
		}
	}
	if authority == "" {
		return m, errors.New("no host:port")
	}
	for i, addr := range strings.Split(authority, ",") {
		// The address is not quoted: a URL missing its '@' would
		// show its password here.
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			return m, fmt.Errorf("host %d: want host:port", i+1)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return m, fmt.Errorf("host %d: port must be a number from 1 to 65535", i+1)
		}
		m.addrs = append(m.addrs, addr)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		// ParseQuery's error quotes the query, which may hold a
		// password.
		return m, errors.New("query: invalid encoding")
	}
	m.query = q
	return m, nil
}

// knownParams refuses a parameter it does not name; the message names the
// parameter, never its value.
func (m multiHost) knownParams(names ...string) error {
	for k := range m.query {
		switch {
		case len(names) == 0:
			return fmt.Errorf("unknown parameter %q (this form takes none)", k)
		case !slices.Contains(names, k):
			return fmt.Errorf("unknown parameter %q (want %s)", k, strings.Join(names, ", "))
		}
	}
	return nil
}

// tlsConfig is the TLS of a rediss-… URL. Its ServerName is empty, so
// that each connection checks the name of the host it dials (crypto/tls
// takes it from the address), as one name cannot fit several servers.
func tlsConfig(secure bool) *tls.Config {
	if !secure {
		return nil
	}
	return &tls.Config{MinVersion: tls.VersionTLS12}
}

// parseSentinel reads
// redis-sentinel://[[user]:password@]host:port[,host:port…][/db]?master=NAME[&sentinel_password=P]:
// the addresses are the sentinels'; the password is the Redis servers',
// and the sentinels' too unless sentinel_password says otherwise (empty
// for sentinels without one). asynq's own parser takes the password for
// the sentinels' only and drops the database; a deployment where the
// sentinels and the servers share a password, the common one, needs both.
func parseSentinel(m multiHost) (asynq.RedisConnOpt, error) {
	if err := m.knownParams("master", "sentinel_password"); err != nil {
		return nil, err
	}
	master := m.query.Get("master")
	if master == "" {
		return nil, errors.New("master: is required (?master=NAME, the name the sentinels monitor)")
	}
	db := 0
	if p := strings.Trim(m.path, "/"); p != "" {
		var err error
		if db, err = strconv.Atoi(p); err != nil || db < 0 {
			return nil, errors.New("database: the path must be a database number (/0)")
		}
	}
	opt := asynq.RedisFailoverClientOpt{
		MasterName:       master,
		SentinelAddrs:    m.addrs,
		SentinelUsername: m.username,
		SentinelPassword: m.password,
		Username:         m.username,
		Password:         m.password,
		DB:               db,
		TLSConfig:        tlsConfig(m.scheme == "rediss-sentinel"),
	}
	if m.query.Has("sentinel_password") {
		opt.SentinelUsername = ""
		opt.SentinelPassword = m.query.Get("sentinel_password")
	}
	return FailoverOpt{opt}, nil
}

// parseCluster reads redis-cluster://[[user]:password@]host:port[,host:port…]:
// any of the cluster's nodes, from which the client learns the rest. A
// cluster has only database 0.
func parseCluster(m multiHost) (asynq.RedisConnOpt, error) {
	if err := m.knownParams(); err != nil {
		return nil, err
	}
	if p := strings.Trim(m.path, "/"); p != "" && p != "0" {
		return nil, errors.New("database: a cluster has only database 0")
	}
	return ClusterOpt{asynq.RedisClusterClientOpt{
		Addrs:     m.addrs,
		Username:  m.username,
		Password:  m.password,
		TLSConfig: tlsConfig(m.scheme == "rediss-cluster"),
	}}, nil
}
