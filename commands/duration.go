package commands

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"crawlcache/configs"
)

// durationValue is a duration flag's value, read like a job file's
// durations (configs.ParseDuration: 90s, 1h30m, 7d, 1d12h). Negative
// values are refused.
type durationValue struct{ d time.Duration }

// Set parses s.
func (v *durationValue) Set(s string) error {
	d, err := configs.ParseDuration(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("%q is negative: want a duration >= 0", s)
	}
	v.d = d
	return nil
}

// String writes the value as help shows it ("2m", "0s").
func (v *durationValue) String() string {
	if v == nil {
		return ""
	}
	return shortDuration(v.d)
}

// durationFlag is a flag taking a duration in the job files' syntax, with
// default def and one environment variable.
func durationFlag(name string, def time.Duration, usage, env string) cli.Flag {
	return &cli.GenericFlag{Name: name, Value: &durationValue{d: def}, Usage: usage, EnvVars: []string{env}}
}

// flagDuration returns the value of a durationFlag.
func flagDuration(c *cli.Context, name string) time.Duration {
	if v, ok := c.Generic(name).(*durationValue); ok && v != nil {
		return v.d
	}
	return 0
}
