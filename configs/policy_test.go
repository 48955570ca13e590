package configs

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"crawlcache/cache"
)

func TestLoadPolicy(t *testing.T) {
	tests := []struct {
		name   string
		path   string
		want   cache.Policy
		ttl    time.Duration
		ttlSet bool
	}{
		{"bare cache section", "testdata/policy.yaml", cache.Policy{
			ExpireAfter:     cache.Expiry{Kind: cache.ExpireAfter, After: 10 * time.Minute},
			URLsExpireAfter: []cache.URLExpiry{{Pattern: "example.org/static/*", Expiry: cache.Expiry{Kind: cache.ExpireNever}}},
			StaleIfError:    -1,
		}, 72 * time.Hour, true},
		{"job file", "example.yaml", cache.Policy{
			ExpireAfter:       cache.Expiry{Kind: cache.ExpireAfter, After: time.Hour},
			URLsExpireAfter:   []cache.URLExpiry{{Pattern: "127.0.0.1:8089/robots.txt", Expiry: cache.Expiry{Kind: cache.ExpireAfter, After: 24 * time.Hour}}},
			StaleIfError:      -1,
			AllowableCodes:    cache.DefaultAllowableCodes,
			AllowableMethods:  []string{"GET", "HEAD"},
			MatchHeaders:      []string{},
			IgnoredParameters: cache.DefaultIgnoredParameters,
		}, 168 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := LoadPolicy(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Cache, tt.want) {
				t.Errorf("policy:\n got %+v\nwant %+v", p.Cache, tt.want)
			}
			if p.TTL != tt.ttl || p.TTLSet != tt.ttlSet {
				t.Errorf("ttl %v set %v, want %v %v", p.TTL, p.TTLSet, tt.ttl, tt.ttlSet)
			}
		})
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown key", "expire_afer: 1h\n", []string{"p.yaml:1: expire_afer: unknown key (did you mean expire_after?)"}},
		{"bad value", "ttl: soon\n", []string{`p.yaml:1: ttl: must be a duration > 0 like 168h, or none, got "soon"`}},
		{"credentials: job in a proxy policy", "credentials: job\n", []string{"p.yaml:1: credentials: job binds entries to a job, and a proxy serves no job: use token (each client's entries bound to its own credential)"}},
		{"job file with a mistake", "name: x\nseeds: [nope]\n", []string{`p.yaml:2: seeds[0]: must be an absolute http(s) URL, got "nope"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parsePolicy("p.yaml", []byte(tt.src))
			var got []string
			for _, e := range Errors(err) {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	if p, err := parsePolicy("p.yaml", nil); err != nil || !reflect.DeepEqual(p.Cache, cache.Policy{}) {
		t.Errorf("empty policy file: %+v, %v; want the default policy", p, err)
	}
}

func TestParseExpiry(t *testing.T) {
	tests := []struct {
		in      string
		want    cache.Expiry
		wantErr string
	}{
		{"1h30m", cache.Expiry{Kind: cache.ExpireAfter, After: 90 * time.Minute}, ""},
		{"0s", cache.Expiry{Kind: cache.ExpireAfter}, ""},
		{"0", cache.Expiry{Kind: cache.ExpireAfter}, ""},
		{"never", cache.Expiry{Kind: cache.ExpireNever}, ""},
		{"do_not_cache", cache.Expiry{Kind: cache.ExpireDoNotCache}, ""},
		{"adaptive", cache.Expiry{Kind: cache.ExpireAdaptive}, ""},
		{"-1h", cache.Expiry{}, `must be a duration >= 0 like 1h, never, do_not_cache or adaptive, got "-1h"`},
		{"3600", cache.Expiry{}, `must be a duration >= 0 like 1h, never, do_not_cache or adaptive, got "3600"`},
	}
	for _, tt := range tests {
		got, err := ParseExpiry(tt.in)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tt.want || gotErr != tt.wantErr {
			t.Errorf("ParseExpiry(%q) = %+v, %q; want %+v, %q", tt.in, got, gotErr, tt.want, tt.wantErr)
		}
	}
}
