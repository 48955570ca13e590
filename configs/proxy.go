package configs

import (
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// proxySchemes are the proxy URL schemes Go's HTTP transport speaks.
var proxySchemes = []string{"http", "https", "socks5", "socks5h"}

// proxy reads the proxy key: a proxy URL with ${ENV_VAR} references
// expanded, or "none" for direct connections whatever the environment
// says. Errors never show the value: it may hold a password.
func (d *decoder) proxy(m map[string]*yaml.Node, j *Job) {
	n, ok := m["proxy"]
	if !ok {
		return
	}
	raw, ok := d.str(n, "proxy")
	if !ok {
		return
	}
	if strings.EqualFold(strings.TrimSpace(raw), "none") {
		j.NoProxy = true
		return
	}
	val, err := expandEnv(strings.TrimSpace(raw), d.lookupEnv)
	if err != nil {
		d.errorf(n, "proxy", "%v", err)
		return
	}
	const want = "must be a proxy URL such as http://proxy.example:3128 or socks5://user:${PROXY_PASSWORD}@proxy.example:1080 (schemes http, https, socks5, socks5h), or none"
	u, err := url.Parse(val)
	switch {
	case err != nil:
		d.errorf(n, "proxy", "%s: %v", want, unwrapURLError(err))
	case !contains(proxySchemes, strings.ToLower(u.Scheme)):
		d.errorf(n, "proxy", "%s; got scheme %q", want, truncate(u.Scheme, 20))
	case u.Host == "" || u.Hostname() == "":
		d.errorf(n, "proxy", "%s; it has no host", want)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		d.errorf(n, "proxy", "%s; it has a path, query or fragment", want)
	default:
		j.Proxy = u
	}
}
