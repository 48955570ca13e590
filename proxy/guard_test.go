package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"crawlcache/proxy"
)

// fakeDNS maps names to addresses, so tests never use the real resolver.
type fakeDNS map[string][]string

func (d fakeDNS) lookup(_ context.Context, host string) ([]net.IPAddr, error) {
	ips, ok := d[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

var testDNS = fakeDNS{
	"public.example":  {"93.184.216.34"},
	"rebind.example":  {"127.0.0.1"},
	"mixed.example":   {"93.184.216.34", "10.0.0.7"},
	"intranet.corp":   {"10.1.2.3"},
	"v6local.example": {"fd12:3456::1"},
	"a.corp.example":  {"192.168.1.5"},
}

func TestGuardCheck(t *testing.T) {
	type tc struct {
		name   string
		allow  []string
		deny   []string
		target string
		tunnel bool
		ok     bool
	}
	cases := []tc{
		{"public http any port", nil, nil, "public.example:8080", false, true},
		{"public tunnel 443", nil, nil, "public.example:443", true, true},
		{"public tunnel default port is 443", nil, nil, "public.example", true, true},
		{"public tunnel other port refused", nil, nil, "public.example:22", true, false},
		{"public http to a low port of another protocol refused", nil, nil, "public.example:25", false, false},
		{"public http default port", nil, nil, "public.example", false, true},
		{"named host:port reaches a low port", []string{"public.example:25"}, nil, "public.example:25", false, true},
		{"loopback literal refused", nil, nil, "127.0.0.1:80", false, false},
		{"IPv6 loopback refused", nil, nil, "[::1]:80", false, false},
		{"IPv4-mapped loopback refused", nil, nil, "[::ffff:127.0.0.1]:80", false, false},
		{"name resolving to loopback refused (checks addresses)", nil, nil, "rebind.example:80", false, false},
		{"one private address among public ones refused", nil, nil, "mixed.example:80", false, false},
		{"RFC 1918 refused", nil, nil, "10.0.0.1:80", false, false},
		{"RFC 1918 172.16/12 refused", nil, nil, "172.20.0.1:80", false, false},
		{"RFC 4193 refused", nil, nil, "v6local.example:80", false, false},
		{"link-local refused (cloud metadata)", nil, nil, "169.254.169.254:80", false, false},
		{"unspecified refused", nil, nil, "0.0.0.0:80", false, false},
		{"allowed host without port: 80", []string{"intranet.corp"}, nil, "intranet.corp:80", false, true},
		{"allowed host without port: 443 tunnel", []string{"intranet.corp"}, nil, "intranet.corp:443", true, true},
		{"allowed host without port: other port refused", []string{"intranet.corp"}, nil, "intranet.corp:8080", false, false},
		{"allowed 127.0.0.1 without port: 22 refused", []string{"127.0.0.1"}, nil, "127.0.0.1:22", true, false},
		{"allowed host:port", []string{"127.0.0.1:8000"}, nil, "127.0.0.1:8000", false, true},
		{"allowed host:port tunnels to that port", []string{"127.0.0.1:8000"}, nil, "127.0.0.1:8000", true, true},
		{"allowed host:port, other port refused", []string{"127.0.0.1:8000"}, nil, "127.0.0.1:8001", false, false},
		{"allow list limits public hosts", []string{"intranet.corp"}, nil, "public.example:80", false, false},
		{"star allows public hosts", []string{"*", "intranet.corp"}, nil, "public.example:8080", false, true},
		{"star does not allow loopback", []string{"*"}, nil, "127.0.0.1:80", false, false},
		{"star does not open tunnel ports", []string{"*"}, nil, "public.example:22", true, false},
		{"star:port opens a tunnel port", []string{"*:8443"}, nil, "public.example:8443", true, true},
		{"wildcard names subdomains", []string{"*.corp.example"}, nil, "a.corp.example:80", false, true},
		{"prefix names addresses", []string{"10.0.0.0/8:8080"}, nil, "intranet.corp:8080", false, true},
		{"bracketed IPv6 entry", []string{"[::1]"}, nil, "[::1]:80", false, true},
		{"store address refused even when allowed", []string{"127.0.0.1:27017"}, []string{"127.0.0.1:27017"}, "127.0.0.1:27017", true, false},
		{"store port on another loopback address refused", []string{"*.x", "localhost:27017"}, []string{"127.0.0.1:27017"}, "[::1]:27017", false, false},
		{"name of the store refused", []string{"rebind.example:27017"}, []string{"127.0.0.1:27017"}, "rebind.example:27017", false, false},
		{"unknown name", nil, nil, "nowhere.example:80", false, false},
		{"bad port", nil, nil, "public.example:99999", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := &proxy.Guard{Allow: c.allow, Deny: c.deny, LookupIPAddr: testDNS.lookup}
			_, err := g.Check(context.Background(), c.target, c.tunnel)
			if got := err == nil; got != c.ok {
				t.Errorf("Check(%q, tunnel=%v) with allow %v: err %v; want allowed=%v", c.target, c.tunnel, c.allow, err, c.ok)
			}
		})
	}
}

func TestGuardDialsTheCheckedAddress(t *testing.T) {
	// Rebinding: the name answers a public address at the check; the
	// dialer must connect to that address, never look the name up again.
	var dialed []string
	g := &proxy.Guard{
		LookupIPAddr: testDNS.lookup,
		Dial: func(_ context.Context, _, addr string) (net.Conn, error) {
			dialed = append(dialed, addr)
			return nil, errors.New("no network in this test")
		},
	}
	_, _ = g.DialContext(context.Background(), "tcp", "public.example:80")
	if fmt.Sprint(dialed) != "[93.184.216.34:80]" {
		t.Errorf("dialed %v, want [93.184.216.34:80]", dialed)
	}
	dialed = nil
	_, err := g.DialContext(context.Background(), "tcp", "rebind.example:80")
	if !errors.Is(err, proxy.ErrDenied) || len(dialed) != 0 {
		t.Errorf("dial of a name resolving to loopback: err %v, dialed %v; want ErrDenied and no dial", err, dialed)
	}
}

func TestStoreAddrs(t *testing.T) {
	for uri, want := range map[string]string{
		"mongodb://127.0.0.1:35565/":                    "[127.0.0.1:35565]",
		"mongodb://user:pw@db1:27018,db2/?replicaSet=x": "[db1:27018 db2:27017]",
		"mongodb+srv://cluster.example/":                "[]",
	} {
		if got := fmt.Sprint(proxy.StoreAddrs(uri)); got != want {
			t.Errorf("StoreAddrs(%q) = %s, want %s", uri, got, want)
		}
	}
}

func TestCheckAllow(t *testing.T) {
	for _, c := range []struct {
		entry string
		ok    bool
	}{
		{"example.org", true},
		{"127.0.0.1:8000", true},
		{"[::1]:8080", true},
		{"[::1]", true},
		{"*.example.org", true},
		{"10.0.0.0/8", true},
		{"10.0.0.0/8:8080", true},
		{"*", true},
		{"*:8443", true},
		{"http://localhost:8000", false},
		{"localhost:http", false},
		{"localhost:0", false},
		{"10.0.0.0/99", false},
		{"", false},
	} {
		if err := proxy.CheckAllow([]string{c.entry}); (err == nil) != c.ok {
			t.Errorf("CheckAllow(%q) = %v, want ok=%v", c.entry, err, c.ok)
		}
	}
}
