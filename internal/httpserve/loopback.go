package httpserve

import (
	"context"
	"net"
	"strings"
	"time"
)

// IsLoopback reports whether a listening host is reachable from this
// machine only: a loopback IP (127.0.0.0/8, ::1), "localhost", or a name
// that resolves to loopback addresses only. An empty host, 0.0.0.0 and ::
// listen on every interface and are not loopback; a name that does not
// resolve is not either. The dashboard and the intake ask it whether they
// may serve without a login or a token.
func IsLoopback(host string) bool {
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	if host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}
