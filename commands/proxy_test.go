package commands

import (
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
