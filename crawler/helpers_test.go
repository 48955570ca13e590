package crawler

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

type regexpT = regexp.Regexp

func mustRE(t *testing.T, expr string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(expr)
	if err != nil {
		t.Fatal(err)
	}
	return re
}

// newLinkOrigin serves a home page linking to links and a plain page at
// every other path; it returns its base URL.
func newLinkOrigin(t *testing.T, links []string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path != "/" {
			fmt.Fprintf(w, "<html><body><h1>%s</h1></body></html>", r.URL.Path)
			return
		}
		var b strings.Builder
		b.WriteString("<html><body><h1>home</h1>")
		for _, l := range links {
			fmt.Fprintf(&b, "<a href=%q>x</a>", l)
		}
		b.WriteString("</body></html>")
		fmt.Fprint(w, b.String())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
