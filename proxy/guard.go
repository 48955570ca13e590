package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrDenied is wrapped by every refusal of a Guard: the destination is not
// one this proxy may reach. The proxy answers it with 403.
var ErrDenied = errors.New("destination refused")

// Guard decides which addresses a forward proxy may reach, and dials only
// addresses it has checked, so a DNS name cannot change its answer between
// the check and the connection (DNS rebinding). The zero value is usable:
// every public address, plain HTTP to ports 80, 443 and above 1024,
// tunnels to port 443 only, the system resolver. It is safe for concurrent
// use once set up.
//
// The rules, checked on every resolved address of a destination:
//   - A Deny address (host:port, e.g. the store's own) is refused always.
//   - Loopback, private (RFC 1918, RFC 4193), link-local, unspecified and
//     multicast addresses are refused unless an Allow entry names the
//     destination.
//   - A tunnel (CONNECT) goes to port 443 only, and plain HTTP to ports 80,
//     443 and 1025-65535 only (Squid's default Safe_ports, less the
//     protocols this proxy does not speak), unless an Allow entry names the
//     destination and its port: a proxy must not carry requests to mail,
//     SSH or other services' ports.
//   - When Allow has entries, only destinations it names are reached (the
//     entry "*" names every public address with the default port rules).
//
// An Allow entry is a host ("example.org", "10.1.2.3", "[::1]"), a
// subdomain wildcard ("*.example.org"), an address prefix ("10.0.0.0/8")
// or any of those with ":port". Without a port it allows ports 80 and 443
// only; any other port must be named.
type Guard struct {
	// Allow lists the destinations the proxy may reach beyond the
	// defaults; see the type's comment.
	Allow []string
	// Deny lists host:port addresses that are refused whatever Allow
	// says: the store's own address.
	Deny []string
	// LookupIPAddr resolves a host name. If nil, net.DefaultResolver's.
	// Tests map names to addresses with it.
	LookupIPAddr func(ctx context.Context, host string) ([]net.IPAddr, error)
	// Dial connects to a checked address (an IP literal and port). If nil,
	// a net.Dialer with a 10 s timeout.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Target is a destination that passed the Guard: the addresses to dial, in
// the resolver's order.
type Target struct {
	Host  string // as asked, lower case, without brackets
	Port  int
	Addrs []netip.Addr
}

// Check resolves hostport and returns the destination when every one of its
// addresses may be reached; tunnel selects the CONNECT port rule. The error
// wraps ErrDenied for a refusal, or is the resolver's.
func (g *Guard) Check(ctx context.Context, hostport string, tunnel bool) (*Target, error) {
	host, port, err := splitHostPort(hostport, tunnel)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDenied, err)
	}
	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	named, star, starPort := g.named(host, port, addrs)
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, uint16(port))
		switch {
		case g.denied(ctx, ap):
			return nil, fmt.Errorf("%w: %s is the cache store's own address", ErrDenied, ap)
		case !isPublic(a) && !named:
			what := fmt.Sprintf("%s resolves to %s, a %s address", host, a, addrKind(a))
			if a.String() == host {
				what = fmt.Sprintf("%s is a %s address", host, addrKind(a))
			}
			return nil, fmt.Errorf("%w: %s; name it with --allow %s to reach it", ErrDenied, what, net.JoinHostPort(host, strconv.Itoa(port)))
		}
	}
	switch {
	case named, starPort:
	case len(g.Allow) > 0 && !star:
		return nil, fmt.Errorf("%w: %s is not in the --allow list", ErrDenied, net.JoinHostPort(host, strconv.Itoa(port)))
	case tunnel && port != 443:
		return nil, fmt.Errorf("%w: CONNECT goes to port 443 only; name %s with --allow to tunnel to it", ErrDenied, net.JoinHostPort(host, strconv.Itoa(port)))
	case !tunnel && port < 1025 && port != 80 && port != 443:
		return nil, fmt.Errorf("%w: plain HTTP goes to ports 80, 443 and 1025-65535 only (port %d is another protocol's); name %s with --allow to reach it", ErrDenied, port, net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return &Target{Host: host, Port: port, Addrs: addrs}, nil
}

// DialContext is a dialer for an http.Transport: it checks addr with the
// plain HTTP rules and connects to one of the addresses it checked.
func (g *Guard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t, err := g.Check(ctx, addr, false)
	if err != nil {
		return nil, err
	}
	return g.DialTarget(ctx, network, t)
}

// DialTarget connects to the first of t's addresses that answers.
func (g *Guard) DialTarget(ctx context.Context, network string, t *Target) (net.Conn, error) {
	dial := g.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	var first error
	for _, a := range t.Addrs {
		c, err := dial(ctx, network, netip.AddrPortFrom(a, uint16(t.Port)).String())
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	lookup := g.LookupIPAddr
	if lookup == nil {
		lookup = net.DefaultResolver.LookupIPAddr
	}
	ips, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	addrs := make([]netip.Addr, 0, len(ips))
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip.IP); ok {
			addrs = append(addrs, a.Unmap())
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", host)
	}
	return addrs, nil
}

// named reports whether an Allow entry names host:port (or, for a prefix
// entry, every one of addrs); star whether the entry "*" (every public
// address) is listed, and starPort whether "*:port" names port.
func (g *Guard) named(host string, port int, addrs []netip.Addr) (named, star, starPort bool) {
	for _, raw := range g.Allow {
		e := strings.ToLower(strings.TrimSpace(raw))
		eh, ep := e, ""
		if h, p, err := net.SplitHostPort(e); err == nil {
			eh, ep = h, p
		} else {
			eh = strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")
		}
		if eh == "*" {
			star = star || ep == ""
			starPort = starPort || ep == strconv.Itoa(port)
			continue
		}
		if !portNamed(ep, port) {
			continue
		}
		switch {
		case eh == host:
			named = true
		case strings.HasPrefix(eh, "*.") && strings.HasSuffix(host, eh[1:]):
			named = true
		case strings.Contains(eh, "/"):
			if pfx, err := netip.ParsePrefix(eh); err == nil && allIn(pfx, addrs) {
				named = true
			}
		}
	}
	return named, star, starPort
}

func portNamed(entry string, port int) bool {
	if entry == "" {
		return port == 80 || port == 443
	}
	return entry == strconv.Itoa(port)
}

func allIn(pfx netip.Prefix, addrs []netip.Addr) bool {
	for _, a := range addrs {
		if !pfx.Contains(a) {
			return false
		}
	}
	return len(addrs) > 0
}

// denied reports whether ap is a Deny address. A Deny host that is a name
// is resolved (only when the port matches).
func (g *Guard) denied(ctx context.Context, ap netip.AddrPort) bool {
	for _, d := range g.Deny {
		host, port, err := splitHostPort(d, false)
		if err != nil || port != int(ap.Port()) {
			continue
		}
		addrs, err := g.resolve(ctx, host)
		if err != nil {
			return true // cannot tell: refuse rather than risk the store
		}
		for _, da := range addrs {
			// A store on loopback answers on every loopback address
			// of its port as far as a client can tell: refuse them
			// all; one listening on every interface, likewise.
			if da == ap.Addr() || (da.IsLoopback() && ap.Addr().IsLoopback()) || da.IsUnspecified() {
				return true
			}
		}
	}
	return false
}

// StoreAddrs returns the host:port addresses of a mongodb:// URI, for
// Guard.Deny: the proxy must never be a way into its own store. A
// mongodb+srv:// URI names no ports and gives none.
func StoreAddrs(uri string) []string {
	rest, ok := strings.CutPrefix(uri, "mongodb://")
	if !ok {
		return nil
	}
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	var out []string
	for _, h := range strings.Split(rest, ",") {
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			h = net.JoinHostPort(strings.Trim(h, "[]"), "27017")
		}
		out = append(out, h)
	}
	return out
}

// isPublic reports whether a may be reached without being named.
func isPublic(a netip.Addr) bool {
	return !(a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsValid() ||
		a == netip.AddrFrom4([4]byte{255, 255, 255, 255}))
}

func addrKind(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsUnspecified():
		return "unspecified"
	}
	return "non-public"
}

// splitHostPort splits a request's host[:port]; the port defaults to 443
// for a tunnel and 80 otherwise.
func splitHostPort(hostport string, tunnel bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		host, portStr = hostport, ""
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
		}
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return "", 0, fmt.Errorf("no host in %q", hostport)
	}
	port := 80
	if tunnel {
		port = 443
	}
	if portStr != "" {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 1 || p > 65535 {
			return "", 0, fmt.Errorf("bad port in %q", hostport)
		}
		port = p
	}
	return host, port, nil
}

// CheckAllow returns an error naming the first entry of allow that can
// never match a destination (a URL, a bad port, a malformed prefix), so a
// typo is reported at start-up instead of as refusals later.
func CheckAllow(allow []string) error {
	for _, raw := range allow {
		e := strings.TrimSpace(raw)
		host, port := e, ""
		if h, p, err := net.SplitHostPort(e); err == nil {
			host, port = h, p
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if port != "" {
			if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("--allow %q: bad port %q (want host, host:port, *.domain, a prefix like 10.0.0.0/8, or *)", raw, port)
			}
		}
		switch {
		case host == "" || strings.Contains(host, "://"):
			return fmt.Errorf("--allow %q: want host, host:port, *.domain, a prefix like 10.0.0.0/8, or * (not a URL)", raw)
		case strings.Contains(host, "/"):
			if _, err := netip.ParsePrefix(host); err != nil {
				return fmt.Errorf("--allow %q: bad address prefix: %v", raw, err)
			}
		case strings.ContainsAny(host, " \t,@?#"):
			return fmt.Errorf("--allow %q: not a host name", raw)
		}
	}
	return nil
}
