package configs

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a duration as job files and command-line arguments
// write it: Go's syntax (300ms, 30s, 1h30m, 168h), a bare 0, and days
// ("d", 24 hours) in any position of a combination: 7d, 1d12h, 1.5d. The
// result may be negative ("-1d"); callers say which range they accept.
// Errors never carry Go's "time: unknown unit" text: they say what to write.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "0" {
		return 0, nil
	}
	bad := fmt.Errorf("%q is not a duration: write a number and a unit (ns, us, ms, s, m, h, d) like 90s, 1h30m, 7d or 1d12h", truncate(s, 60))
	tooLong := fmt.Errorf("%q is too long a duration: at most about 290 years (106751d)", truncate(s, 60))
	neg := false
	body := s
	if rest, ok := strings.CutPrefix(body, "-"); ok {
		neg, body = true, rest
	} else {
		body = strings.TrimPrefix(body, "+")
	}
	if body == "" {
		return 0, bad
	}
	// Days are taken out; Go parses the rest (and checks its syntax).
	var days time.Duration
	var rest strings.Builder
	for body != "" {
		n := strings.IndexFunc(body, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if n <= 0 {
			return 0, bad // a unit without a number, or a number without a unit
		}
		num, tail := body[:n], body[n:]
		u := strings.IndexFunc(tail, func(r rune) bool { return (r >= '0' && r <= '9') || r == '.' })
		if u < 0 {
			u = len(tail)
		}
		unit := tail[:u]
		body = tail[u:]
		if unit != "d" {
			rest.WriteString(num + unit)
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, bad
		}
		if v*float64(24*time.Hour) >= math.MaxInt64-float64(days) {
			return 0, tooLong
		}
		if v == math.Trunc(v) {
			days += time.Duration(v) * 24 * time.Hour // exact for whole days
		} else {
			days += time.Duration(v * float64(24*time.Hour))
		}
	}
	var d time.Duration
	if rest.Len() > 0 {
		var err error
		if d, err = time.ParseDuration(rest.String()); err != nil {
			return 0, bad
		}
	}
	if d > math.MaxInt64-days {
		return 0, tooLong
	}
	if neg {
		return -(days + d), nil
	}
	return days + d, nil
}

// ParseEvery reads the interval of an "@every D" schedule (an optional
// CRON_TZ= or TZ= prefix is ignored: an interval has no time zone), with
// ParseDuration, so "@every 1d" works. ok is false when spec is not an
// @every schedule. The interval must be at least 1s.
func ParseEvery(spec string) (d time.Duration, ok bool, err error) {
	s := strings.TrimSpace(spec)
	if strings.HasPrefix(s, "CRON_TZ=") || strings.HasPrefix(s, "TZ=") {
		if _, rest, found := strings.Cut(s, " "); found {
			s = strings.TrimSpace(rest)
		}
	}
	rest, ok := strings.CutPrefix(s, "@every ")
	if !ok {
		return 0, false, nil
	}
	d, err = ParseDuration(rest)
	if err != nil {
		return 0, true, fmt.Errorf("@every: %w", err)
	}
	if d < time.Second {
		return 0, true, fmt.Errorf("@every needs a duration of at least 1s, got %q", strings.TrimSpace(rest))
	}
	return d, true, nil
}
