package commands

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"crawlcache/proxy"
)

// TestProxyFlagsRefused: proxy flags that cannot work are refused before
// anything listens, with a message naming the flag.
func TestProxyFlagsRefused(t *testing.T) {
	cli := newCacheCLI(t)
	storeAddr := proxy.StoreAddrs(cli.uri)[0]
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"CDN-Cache-Control in a forward proxy", []string{"--cdn-cache-control"}, "--cdn-cache-control"},
		{"CDN-Cache-Control in a private cache", []string{"--cdn-cache-control", "--private", "--upstream", "http://127.0.0.1:9"}, "--cdn-cache-control"},
		{"no buffer", []string{"--max-buffer", "0"}, "--max-buffer"},
		{"malformed body limit", []string{"--max-request-body", "lots"}, "--max-request-body"},
		{"an --allow entry that is a URL", []string{"--allow", "http://localhost:8000"}, "--allow"},
		{"upstream is the store", []string{"--upstream", "http://" + storeAddr}, "store's own address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, code := cli.run(append([]string{"proxy", "--listen", "127.0.0.1:0"}, c.args...)...)
			if code == 0 || !strings.Contains(out, c.want) {
				t.Errorf("exit %d, output %q; want a failure naming %q", code, out, c.want)
			}
		})
	}
}

// TestProxyAdaptiveRefused: the proxy refuses what a job's config refuses
// of adaptive revisits (configs: adaptive with cache_control: true, and
// adaptive bounds with no adaptive expiry), whether the flags or the
// --policy file set each side, with a message that says what to fix, and
// before it binds: --listen is an address already taken, so a check made
// after binding would fail on the listen instead. A valid combination
// gets as far as the listen.
func TestProxyAdaptiveRefused(t *testing.T) {
	cli := newCacheCLI(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = taken.Close() })
	dir := t.TempDir()
	file := func(name, yaml string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	rfc := file("rfc.yaml", "cache_control: true\n")
	adaptive := file("adaptive.yaml", "expire_after: adaptive\n")
	bounds := file("bounds.yaml", "expire_after: adaptive\nadaptive: {min: 2h}\n")
	pattern := file("pattern.yaml", "urls_expire_after:\n  \"example.org/news/*\": adaptive\n")
	cases := []struct {
		name string
		env  string // CRAWLCACHE_CACHE_CONTROL, if set
		args []string
		want []string
	}{
		{"both flags", "", []string{"--expire-after", "adaptive", "--cache-control"},
			[]string{"--cache-control follows RFC 9111", "(--expire-after adaptive)", "remove --cache-control, or give --expire-after a duration"}},
		{"cache control from the environment", "true", []string{"--expire-after", "adaptive"},
			[]string{"--cache-control follows RFC 9111", "(--expire-after adaptive)"}},
		{"cache_control in the file, adaptive flag", "", []string{"--policy", rfc, "--expire-after", "adaptive"},
			[]string{"cache_control: true in " + rfc, "remove cache_control from " + rfc + ", or give --expire-after"}},
		{"adaptive in the file, cache control flag", "", []string{"--policy", adaptive, "--cache-control"},
			[]string{"(the adaptive expiry in " + adaptive + ")", "remove --cache-control, or remove the adaptive expiry from " + adaptive}},
		{"adaptive pattern in the file and the flag", "", []string{"--policy", pattern, "--expire-after", "adaptive", "--cache-control"},
			[]string{"(--expire-after adaptive and the adaptive expiry in " + pattern + ")"}},
		{"bounds in the file, flag replaces adaptive", "", []string{"--policy", bounds, "--expire-after", "1h"},
			[]string{"--expire-after 1h replaces the adaptive expiry of " + bounds, "use --expire-after adaptive, or remove adaptive: from " + bounds}},
		{"the file alone is checked on load", "", []string{"--policy", file("both.yaml", "expire_after: adaptive\ncache_control: true\n")},
			[]string{"remove cache_control or the adaptive expiry"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("CRAWLCACHE_CACHE_CONTROL", c.env)
			}
			out, code := cli.run(append([]string{"proxy", "--listen", taken.Addr().String()}, c.args...)...)
			if code == 0 || strings.Contains(out, "proxy listen on") {
				t.Errorf("exit %d, output %q; want a refusal before the listen", code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output %q; want it to contain %q", out, w)
				}
			}
		})
	}

	accepted := []struct {
		name string
		args []string
	}{
		{"adaptive alone", []string{"--expire-after", "adaptive"}},
		{"adaptive pattern, flag duration", []string{"--policy", pattern, "--expire-after", "1h"}},
		{"cache_control file, flag switches it off", []string{"--policy", rfc, "--cache-control=false", "--expire-after", "adaptive"}},
		{"bounds file, adaptive flag", []string{"--policy", bounds, "--expire-after", "adaptive"}},
	}
	for _, c := range accepted {
		t.Run("accepted: "+c.name, func(t *testing.T) {
			out, _ := cli.run(append([]string{"proxy", "--listen", taken.Addr().String()}, c.args...)...)
			if !strings.Contains(out, "proxy listen on") {
				t.Errorf("output %q; want the checks passed and the listen on a taken address refused", out)
			}
		})
	}
}
