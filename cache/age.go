package cache

import (
	"net/http"
	"strconv"
	"time"
)

// Age calculation (RFC 9111 §4.2.3). A stored entry keeps what the
// calculation needs: its headers (Date, Age) and validated_at, the time
// its last 200 or 304 was received (response_time). A 304 merges its Date
// and Age over the stored ones and moves validated_at, so a revalidated
// response's age starts again from the 304.

// dateValue is date_value: the response's Date when it is one valid
// HTTP-date, else the time it was received (RFC 9110 §6.6.1: a recipient
// treats a message without a valid Date as dated when it arrived).
func dateValue(h http.Header, responseTime time.Time) time.Time {
	if d, ok := parseHTTPDateField(h.Values("Date"), responseTime); ok {
		return d
	}
	return responseTime
}

// initialAge is corrected_initial_age: the larger of the apparent age
// (response_time − date_value, never negative) and the Age the response
// arrived with. The request time is not recorded, so response_delay
// counts as zero: on a crawl it is one round trip.
func initialAge(h http.Header, responseTime time.Time) time.Duration {
	apparent := max(0, responseTime.Sub(dateValue(h, responseTime)))
	age, _ := parseAge(h.Values("Age"))
	// Capped like delta-seconds (§1.2.2): a Date in year 1 would make
	// time.Sub saturate, and adding the resident time would then
	// overflow into a negative, forever fresh, age.
	return min(max(apparent, age), maxAge)
}

// maxAge is the largest age the cache computes with: 2^31 seconds, about
// 68 years.
const maxAge = (1 << 31) * time.Second

// currentAge is current_age at now of a response received at
// responseTime: corrected_initial_age plus the time it has been stored.
func currentAge(h http.Header, responseTime, now time.Time) time.Duration {
	return initialAge(h, responseTime) + max(0, now.Sub(responseTime))
}

// setAge writes the Age header of a response served from storage (RFC
// 9111 §5.1: a cache generating a response from storage sends Age, in
// whole seconds, rounded down).
func setAge(h http.Header, responseTime, now time.Time) {
	age := currentAge(h, responseTime, now)
	h.Set("Age", strconv.FormatInt(int64(age/time.Second), 10))
}

// fixDate gives a response without one valid Date a Date of the time it
// was received, before it is stored or forwarded (RFC 9110 §6.6.1: MUST
// for a missing Date, MAY for an invalid one), so that its age can be
// computed from what is stored.
func fixDate(h http.Header, responseTime time.Time) {
	if _, ok := parseHTTPDateField(h.Values("Date"), responseTime); !ok {
		h.Set("Date", responseTime.UTC().Format(http.TimeFormat))
	}
}
