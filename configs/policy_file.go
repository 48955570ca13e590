package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"

	"crawlcache/cache"
)

// LoadPolicy reads a cache policy file: a YAML mapping with the keys of a
// job's `cache:` section at its top level (expire_after, urls_expire_after,
// cache_control, ...). It is what `crawlcache proxy --policy FILE` reads.
// Errors name the file, line and key, like Load's. The returned Job holds
// only Cache, TTL and TTLSet.
func LoadPolicy(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %s", readMsg(err))
	}
	d := &decoder{file: path, lookupEnv: os.LookupEnv}
	job := &Job{Source: path}
	var doc yaml.Node
	switch err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); {
	case errors.Is(err, io.EOF):
		return job, nil // an empty policy file is the default policy
	case err != nil:
		return nil, joinErrors(syntaxErrors(path, err))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	d.cache(root, "", job)
	if err := joinErrors(d.errs); err != nil {
		return nil, err
	}
	return job, nil
}

// ParseExpiry parses an expiry as written in configs and flags: a Go
// duration (0s = revalidate on every use), "never" or "do_not_cache".
func ParseExpiry(s string) (cache.Expiry, error) {
	d := &decoder{file: "flag"}
	exp, ok := d.expiry(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}, "expire_after")
	if !ok {
		return cache.Expiry{}, fmt.Errorf("expiry %q: must be a duration >= 0 like 1h, never or do_not_cache", s)
	}
	return exp, nil
}
