package sitemap

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// maxTextBytes bounds the text collected for one <loc> or <lastmod>:
// longer URLs are skipped anyway, so a 50 MB <loc> is never held.
const maxTextBytes = 4096

// xml reads a <urlset> or <sitemapindex> document token by token. Depth 1
// is the root, 2 an entry (<url>, <sitemap>), 3 its <loc> and <lastmod>;
// everything else (extensions, unknown elements) is skipped.
func (p *parser) xml(r io.Reader) error {
	d := xml.NewDecoder(r)
	d.Strict = true // undefined entities (those of a DTD) are errors
	var (
		depth      int
		ns, entry  string // the root's namespace and entry element name
		field      string // "loc" or "lastmod" being read, at depth 3
		loc, mod   strings.Builder
		inEntry    bool
		sawRoot    bool
		overLength bool
	)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if !sawRoot {
				return fmt.Errorf("%w: no root element", ErrMalformed)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 1:
				if sawRoot {
					return fmt.Errorf("%w: second root element <%s>", ErrMalformed, t.Name.Local)
				}
				sawRoot = true
				kind, ok := rootKind(t.Name)
				if !ok {
					return fmt.Errorf("%w: root element is <%s> in namespace %q, want <urlset> or <sitemapindex> in %q", ErrNotSitemap, t.Name.Local, t.Name.Space, Namespace)
				}
				p.sm.Kind, ns, entry = kind, t.Name.Space, "url"
				if kind == Index {
					entry = "sitemap"
				}
			case depth == 2 && t.Name.Space == ns && t.Name.Local == entry:
				inEntry = true
				loc.Reset()
				mod.Reset()
				overLength = false
			case depth == 3 && inEntry && t.Name.Space == ns && (t.Name.Local == "loc" || t.Name.Local == "lastmod"):
				field = t.Name.Local
			}
		case xml.CharData:
			switch field {
			case "loc":
				if loc.Len()+len(t) > maxTextBytes {
					overLength = true
					continue
				}
				loc.Write(t)
			case "lastmod":
				if mod.Len()+len(t) <= maxTextBytes {
					mod.Write(t)
				}
			}
		case xml.EndElement:
			switch {
			case depth == 3:
				field = ""
			case depth == 2 && inEntry:
				inEntry = false
				l := loc.String()
				if overLength {
					l = ""
				}
				if err := p.add(l, mod.String()); err != nil {
					return err
				}
			}
			depth--
		}
	}
}

// rootKind tells a sitemap root element from anything else.
func rootKind(n xml.Name) (Kind, bool) {
	if !namespaces[n.Space] {
		return 0, false
	}
	switch n.Local {
	case "urlset":
		return URLSet, true
	case "sitemapindex":
		return Index, true
	}
	return 0, false
}

// lastModLayouts are the W3C datetime forms the protocol allows, most
// precise first.
var lastModLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04Z07:00",
	"2006-01-02",
	"2006-01",
	"2006",
}

// ParseLastMod parses a <lastmod> value (a W3C datetime: 2026-12-03,
// 2026-12-03T10:00:00+01:00, ...). A date without a time is midnight UTC.
// It returns the zero time when s is empty or not such a value.
func ParseLastMod(s string) time.Time {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}
	}
	for _, layout := range lastModLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
