package configs

import (
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"crawlcache/cache"
)

// expireAdaptive is the expire_after value of adaptive revisits.
const expireAdaptive = "adaptive"

// adaptive reads cache.adaptive, the bounds of expire_after: adaptive
// ({min, max, initial}, each a duration > 0, min <= initial <= max once
// the defaults fill the keys left out), and checks that adaptive is used
// where it can apply: not with cache_control (RFC 9111 decides there), and
// bounds only where some expiry is adaptive.
func (d *decoder) adaptive(m map[string]*yaml.Node, p string, pol *cache.Policy) {
	uses := UsesAdaptive(*pol)
	if uses && pol.CacheControl {
		d.errorf(m["cache_control"], join(p, "cache_control"),
			"true follows RFC 9111 and ignores expire_after, so adaptive revisits would never apply: remove cache_control or the adaptive expiry")
	}
	n, ok := m["adaptive"]
	if !ok {
		return
	}
	kp := join(p, "adaptive")
	if !uses {
		d.errorf(n, kp, "sets the bounds of adaptive revisits, but no expiry is adaptive: set expire_after: adaptive (or a urls_expire_after pattern to adaptive), or remove it")
	}
	f, ok := d.fields(n, kp, "min", "max", "initial")
	if !ok {
		return
	}
	a := &pol.Adaptive
	for _, b := range []struct {
		key string
		dst *time.Duration
	}{{"min", &a.Min}, {"max", &a.Max}, {"initial", &a.Initial}} {
		key, dst := b.key, b.dst
		v, set := f[key]
		if !set {
			continue
		}
		if dur, ok := d.duration(v, join(kp, key)); ok {
			if dur < time.Second {
				d.errorf(v, join(kp, key), "must be at least 1s, got %s", got(v))
				continue
			}
			*dst = dur
		}
	}
	lo, hi, initial := orDefault(a.Min, cache.DefaultAdaptiveMin), orDefault(a.Max, cache.DefaultAdaptiveMax), orDefault(a.Initial, cache.DefaultAdaptiveInitial)
	switch {
	case lo > hi:
		key := first(f, "max", "min")
		d.errorf(f[key], join(kp, key), "min (%s) is longer than max (%s)%s", cache.FormatInterval(lo), cache.FormatInterval(hi), defaultNote(a))
	case initial < lo || initial > hi:
		key := first(f, "initial", "min", "max")
		d.errorf(f[key], join(kp, key), "initial (%s) must lie between min (%s) and max (%s)%s", cache.FormatInterval(initial), cache.FormatInterval(lo), cache.FormatInterval(hi), defaultNote(a))
	}
}

// UsesAdaptive reports whether some expiry of pol, expire_after or a
// urls_expire_after pattern, is adaptive. A job refuses adaptive together
// with cache_control, and adaptive bounds with no adaptive expiry; the
// proxy, whose flags override its policy file, checks the same with it.
func UsesAdaptive(pol cache.Policy) bool {
	uses := pol.ExpireAfter.Kind == cache.ExpireAdaptive
	for _, r := range pol.URLsExpireAfter {
		uses = uses || r.Expiry.Kind == cache.ExpireAdaptive
	}
	return uses
}

// defaultNote names the bounds a left out, which took their defaults.
func defaultNote(a *cache.Adaptive) string {
	var out []string
	for _, b := range []struct {
		name string
		v    time.Duration
		def  time.Duration
	}{{"min", a.Min, cache.DefaultAdaptiveMin}, {"max", a.Max, cache.DefaultAdaptiveMax}, {"initial", a.Initial, cache.DefaultAdaptiveInitial}} {
		if b.v == 0 {
			out = append(out, b.name+" "+cache.FormatInterval(b.def))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return " (defaults taken: " + strings.Join(out, ", ") + ")"
}

// first is the first of keys set in f (the last key when none is).
func first(f map[string]*yaml.Node, keys ...string) string {
	for _, k := range keys {
		if _, ok := f[k]; ok {
			return k
		}
	}
	return keys[len(keys)-1]
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
