package configs

import "fmt"

// ParseSize parses a size in bytes as the config files write it: a number
// with an optional unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. 10485760 or
// 256MiB. It returns an error for a negative or malformed size.
func ParseSize(s string) (int64, error) {
	v, ok := parseSize(s)
	if !ok {
		return 0, fmt.Errorf("size %q: want bytes >= 0 like 10485760 or 256MiB", s)
	}
	return v, nil
}
