package configs

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestSitemapsKey(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Sitemaps
	}{
		{"absent reads none", "", Sitemaps{}},
		{"false reads none", "sitemaps: false\n", Sitemaps{}},
		{"true discovers", "sitemaps: true\n", Sitemaps{Discover: true}},
		{"list of URLs", "sitemaps: ['https://example.org/a.xml', 'https://example.org/b.xml.gz']\n",
			Sitemaps{URLs: []string{"https://example.org/a.xml", "https://example.org/b.xml.gz"}}},
		{"trust_lastmod", "sitemaps: true\ntrust_lastmod: true\n", Sitemaps{Discover: true, TrustLastMod: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := parseTest("t.yaml", ok+tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(job.Sitemaps, tt.want) {
				t.Errorf("Sitemaps = %+v, want %+v", job.Sitemaps, tt.want)
			}
		})
	}
}

func TestSitemapsKeyErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"a string", "sitemaps: yes please\n", "bad.yaml:3: sitemaps: must be true, false or a list of sitemap URLs"},
		{"relative URL", "sitemaps: ['/sitemap.xml']\n", "bad.yaml:3: sitemaps[0]: must be an absolute http(s) URL"},
		{"empty list", "sitemaps: []\n", "bad.yaml:3: sitemaps: an empty list reads no sitemap"},
		{"sitemap on another host", "sitemaps: ['https://cdn.example.com/sitemap.xml']\n", "bad.yaml:3: sitemaps[0]: host \"cdn.example.com\" is not in allowed_domains"},
		{"trust without sitemaps", "trust_lastmod: true\n", "bad.yaml:3: trust_lastmod: needs sitemaps"},
		{"trust not a bool", "sitemaps: true\ntrust_lastmod: 1\n", "bad.yaml:4: trust_lastmod: must be true or false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := errorLines(t, ok+tt.src)
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, tt.want) }) {
				t.Errorf("errors = %q, want one starting %q", lines, tt.want)
			}
		})
	}
}
