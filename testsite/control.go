package testsite

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Control endpoints let a process that does not hold the *Site (a benchmark
// that kills and restarts its crawler, a shell script) read the counts and
// drive the site. They live under Options.Control, are never linked, are
// exempt from latency and faults, and are not counted.
const (
	controlCounts = "counts" // GET: Counts as JSON
	controlReset  = "reset"  // POST: ResetCounts
	controlChange = "change" // POST ?fraction=0.1: Change, the changed paths as JSON
)

// serveControl answers requests under Options.Control and reports whether
// r was one.
func (s *Site) serveControl(w http.ResponseWriter, r *http.Request) bool {
	if s.opts.Control == "" || !strings.HasPrefix(r.URL.Path, s.opts.Control) {
		return false
	}
	reply := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	switch op := strings.TrimPrefix(r.URL.Path, s.opts.Control); {
	case op == controlCounts && r.Method == http.MethodGet:
		reply(http.StatusOK, s.Counts())
	case op == controlReset && r.Method == http.MethodPost:
		s.ResetCounts()
		reply(http.StatusOK, map[string]bool{"reset": true})
	case op == controlChange && r.Method == http.MethodPost:
		f, err := strconv.ParseFloat(r.URL.Query().Get("fraction"), 64)
		if err != nil || f < 0 || f > 1 {
			reply(http.StatusBadRequest, map[string]string{"error": "fraction: want a number in [0, 1]"})
			return true
		}
		reply(http.StatusOK, s.Change(f))
	default:
		reply(http.StatusNotFound, map[string]string{"error": "unknown control " + r.Method + " " + r.URL.Path})
	}
	return true
}

// countsJSON is the wire form of Counts.
type countsJSON struct {
	Total       int                       `json:"total"`
	Bodies      int                       `json:"bodies"`
	NotModified int                       `json:"not_modified"`
	BodyBytes   int64                     `json:"body_bytes"`
	Paths       map[string]map[string]int `json:"paths"` // path → status → requests
}

// MarshalJSON encodes the counts with every path's requests by status.
func (c Counts) MarshalJSON() ([]byte, error) {
	j := countsJSON{Total: c.Total, Bodies: c.Bodies, NotModified: c.NotModified, BodyBytes: c.BodyBytes, Paths: map[string]map[string]int{}}
	for p, scs := range c.byPath {
		m := make(map[string]int, len(scs))
		for _, sc := range scs {
			m[strconv.Itoa(sc.code)] = sc.n
		}
		j.Paths[p] = m
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes what MarshalJSON encodes, e.g. the answer of the
// counts control endpoint.
func (c *Counts) UnmarshalJSON(b []byte) error {
	var j countsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("decode test site counts: %w", err)
	}
	*c = Counts{Total: j.Total, Bodies: j.Bodies, NotModified: j.NotModified, BodyBytes: j.BodyBytes, byPath: map[string][]statusCount{}}
	for p, m := range j.Paths {
		for code, n := range m {
			k, err := strconv.Atoi(code)
			if err != nil {
				return fmt.Errorf("decode test site counts: status %q of %s: %w", code, p, err)
			}
			c.byPath[p] = append(c.byPath[p], statusCount{k, n})
		}
	}
	return nil
}
