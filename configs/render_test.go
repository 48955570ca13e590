package configs

import (
	"slices"
	"testing"
	"time"
)

func TestRenderSection(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want Render
	}{
		{"absent: off", ok, Render{}},
		{"empty section: on with defaults", ok + "render: {}\n",
			Render{Enabled: true, Wait: "networkidle", Timeout: 30 * time.Second, Parallelism: 2, Block: []string{"image", "font", "media"}}},
		{"enabled false", ok + "render: {enabled: false, wait: load}\n",
			Render{Enabled: false, Wait: "load", Timeout: 30 * time.Second, Parallelism: 2, Block: []string{"image", "font", "media"}}},
		{"every key", ok + "render:\n  enabled: true\n  wait: 'main[data-state=ready]'\n  timeout: 10s\n  parallelism: 3\n  block: []\n  include: ['/app/']\n  cookies: true\n",
			Render{Enabled: true, Wait: "main[data-state=ready]", Timeout: 10 * time.Second, Parallelism: 3, Block: []string{},
				IncludePatterns: []string{"/app/"}, Cookies: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			job, err := parseTest("r.yaml", tc.src)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			got := job.Render
			if got.Enabled != tc.want.Enabled || got.Wait != tc.want.Wait || got.Timeout != tc.want.Timeout ||
				got.Parallelism != tc.want.Parallelism || !slices.Equal(got.Block, tc.want.Block) ||
				(got.Block == nil) != (tc.want.Block == nil) || !slices.Equal(got.IncludePatterns, tc.want.IncludePatterns) ||
				len(got.Include) != len(tc.want.IncludePatterns) || got.Cookies != tc.want.Cookies {
				t.Errorf("render = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRenderSectionErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown key", ok + "render:\n  wiat: load\n",
			[]string{"bad.yaml:4: render.wiat: unknown key (did you mean wait?)"}},
		{"bad selector", ok + "render:\n  wait: 'main[[['\n",
			[]string{`bad.yaml:4: render.wait: invalid CSS selector "main[[[": expected identifier, found [ instead`}},
		{"zero timeout", ok + "render: {timeout: 0s}\n",
			[]string{"bad.yaml:3: render.timeout: must be > 0, got \"0s\""}},
		{"parallelism below 1", ok + "render: {parallelism: 0}\n",
			[]string{"bad.yaml:3: render.parallelism: must be an integer >= 1, got 0"}},
		{"unknown resource type", ok + "render:\n  block: [image, pictures]\n",
			[]string{`bad.yaml:4: render.block[1]: unknown resource type "pictures"; one of document, stylesheet, image, media, font, script, texttrack, xhr, fetch, prefetch, eventsource, websocket, manifest, signedexchange, ping, cspviolationreport, preflight, other`}},
		{"bad include", ok + "render:\n  include: ['(']\n",
			[]string{"bad.yaml:4: render.include[0]: invalid regexp: missing closing ): `(`"}},
		{"not a mapping", ok + "render: yes\n",
			[]string{`bad.yaml:3: render: must be a mapping, got "yes"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := errorLines(t, tc.src); !slices.Equal(got, tc.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
