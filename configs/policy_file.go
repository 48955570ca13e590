package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// LoadPolicy reads a cache policy file: a YAML mapping with the keys of a
// job's `cache:` section at its top level (expire_after, urls_expire_after,
// cache_control, ..., ttl), or a whole job file, whose cache section is then
// used (and the rest of the job validated). It is what
// `crawlcache proxy --policy FILE` reads. Errors name the file, line and
// key, like Load's. The returned Job holds only Cache, TTL, TTLSet, Source
// and Hash; an empty file is the default policy.
func LoadPolicy(path string) (*Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: readMsg(err)}
	}
	return parsePolicy(path, data)
}

func parsePolicy(path string, data []byte) (*Job, error) {
	sum := sha256.Sum256(data)
	policy := &Job{Source: path, Hash: hex.EncodeToString(sum[:])}
	var doc yaml.Node
	switch err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); {
	case errors.Is(err, io.EOF):
		return policy, nil
	case err != nil:
		return nil, joinErrors(syntaxErrors(path, err))
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return policy, nil
		}
		root = root.Content[0]
	}
	if isJobFile(root) {
		job, err := Parse(path, data)
		if err != nil {
			return nil, err
		}
		policy.Cache, policy.TTL, policy.TTLSet = job.Cache, job.TTL, job.TTLSet
		return policy, nil
	}
	d := &decoder{file: path, lookupEnv: os.LookupEnv, noJob: true}
	d.cache(root, "", policy)
	if err := joinErrors(d.errs); err != nil {
		return nil, err
	}
	return policy, nil
}

// isJobFile reports whether a root mapping is a job file rather than a
// bare cache section: it has a name, seeds or cache key.
func isJobFile(root *yaml.Node) bool {
	root = resolve(root)
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i < len(root.Content); i += 2 {
		if k := resolve(root.Content[i]); k != nil && (k.Value == "name" || k.Value == "seeds" || k.Value == "cache") {
			return true
		}
	}
	return false
}
