// Package sitemap parses sitemaps as the sitemaps.org protocol (0.9)
// defines them: XML <urlset> files, <sitemapindex> files that list other
// sitemaps, plain-text files of one URL per line, each optionally
// gzip-compressed.
//
// It is written for hostile input. A file is read only up to the
// protocol's limits (MaxBytes uncompressed, MaxURLs entries); a gzip bomb
// stops at MaxBytes of output. The XML decoder expands no entity a
// document defines (an internal DTD subset is ignored and a reference to
// one of its entities is an error), so XXE and "billion laughs" files are
// malformed input, not a fetch or a memory blow-up. Only <loc> and
// <lastmod> elements in the sitemap's own namespace count: the <loc> of an
// extension (image:loc, video:content_loc) is never taken for a page.
//
// The package fetches nothing and knows nothing of crawls: callers read the
// bytes (through their cache) and decide what to do with the URLs.
package sitemap

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
)

// The protocol's limits.
const (
	// MaxURLs is the most entries (URLs or sitemaps) one file may list.
	MaxURLs = 50000
	// MaxBytes is the largest uncompressed file (50 MiB, 52,428,800
	// bytes).
	MaxBytes = 50 << 20
	// MaxLocLength is the longest URL the protocol allows (it says "less
	// than 2,048 characters"); longer ones are skipped.
	MaxLocLength = 2047
)

// Namespace is the sitemaps.org namespace of <urlset> and <sitemapindex>.
const Namespace = "http://www.sitemaps.org/schemas/sitemap/0.9"

// namespaces are the namespaces a sitemap's root may be in: the protocol's,
// none (a common mistake that every search engine accepts) and Google's
// from before sitemaps.org.
var namespaces = map[string]bool{
	Namespace: true,
	"":        true,
	"http://www.google.com/schemas/sitemap/0.84": true,
	"http://www.google.com/schemas/sitemap/0.9":  true,
}

// Errors returned by Parse, checked with errors.Is. Parse returns what it
// read before the problem together with the error.
var (
	// ErrTooLarge: the file (uncompressed) is over MaxBytes.
	ErrTooLarge = errors.New("sitemap over 50 MiB uncompressed")
	// ErrTooManyURLs: the file lists more than MaxURLs entries; the first
	// MaxURLs are returned.
	ErrTooManyURLs = errors.New("sitemap lists more than 50,000 entries")
	// ErrNotSitemap: the file is XML whose root is not <urlset> or
	// <sitemapindex> in a sitemap namespace.
	ErrNotSitemap = errors.New("not a sitemap")
	// ErrMalformed: the file is not well-formed XML, or its gzip stream is
	// broken.
	ErrMalformed = errors.New("malformed sitemap")
)

// Kind says what a file lists.
type Kind int

// Kinds of sitemap file.
const (
	// URLSet lists pages (<urlset>).
	URLSet Kind = iota
	// Index lists other sitemaps (<sitemapindex>).
	Index
	// Text lists pages, one URL per line.
	Text
)

// String names the kind as in the file ("urlset", "sitemapindex", "text").
func (k Kind) String() string {
	switch k {
	case Index:
		return "sitemapindex"
	case Text:
		return "text"
	}
	return "urlset"
}

// Entry is one <url> (or <sitemap> of an index): its absolute URL and its
// <lastmod>, zero when absent or not a W3C datetime.
type Entry struct {
	Loc     string
	LastMod time.Time
}

// Sitemap is one parsed file.
type Sitemap struct {
	Kind Kind
	// Entries are the pages (URLSet, Text) or sitemaps (Index) in file
	// order, at most MaxURLs.
	Entries []Entry
	// Skipped counts entries left out because their <loc> was missing,
	// not an http(s) URL, or longer than MaxLocLength.
	Skipped int
	// Relative counts entries whose <loc> was a relative reference (the
	// protocol wants absolute URLs), resolved against the sitemap's URL.
	Relative int
}

// Parse reads one sitemap file from r, gzip-compressed or not (told by its
// first bytes, whatever the Content-Type said), and resolves each <loc>
// against base (the sitemap's own URL; may be nil, then relative locs are
// skipped). It returns ErrTooLarge, ErrTooManyURLs, ErrNotSitemap or
// ErrMalformed (wrapped, with details), and in every case the entries it
// read before the problem. Parse reads at most MaxBytes+1 uncompressed
// bytes from r.
func Parse(r io.Reader, base *url.URL) (*Sitemap, error) {
	br := bufio.NewReader(r)
	var in io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return &Sitemap{}, fmt.Errorf("%w: gzip: %v", ErrMalformed, err)
		}
		defer zr.Close()
		in = zr
	}
	lr := &limitReader{r: in, n: maxBytes}
	body := bufio.NewReader(lr)
	first, err := firstByte(body)
	if err != nil {
		return &Sitemap{}, readErr(lr, err)
	}
	p := &parser{base: base, sm: &Sitemap{}}
	if first != '<' {
		p.sm.Kind = Text
		err = p.text(body)
	} else {
		err = p.xml(body)
	}
	if lr.over {
		return p.sm, ErrTooLarge
	}
	return p.sm, err
}

// firstByte skips a UTF-8 byte order mark and white space and returns the
// next byte without consuming it.
func firstByte(r *bufio.Reader) (byte, error) {
	if bom, _ := r.Peek(3); bytes.Equal(bom, []byte{0xef, 0xbb, 0xbf}) {
		_, _ = r.Discard(3)
	}
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\t' && b != '\r' && b != '\n' {
			return b, r.UnreadByte()
		}
	}
}

// readErr turns a failure to read the start of the file into an error.
func readErr(lr *limitReader, err error) error {
	switch {
	case lr.over:
		return ErrTooLarge
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: empty file", ErrMalformed)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// limitReader reads at most n bytes and then fails, remembering that the
// input went on (over).
type limitReader struct {
	r    io.Reader
	n    int64
	over bool
}

var errLimit = errors.New("size limit reached")

// maxBytes and maxURLs are MaxBytes and MaxURLs, lowered by tests that
// need not read 50 MiB or 50,000 URLs to check what happens past them.
var (
	maxBytes int64 = MaxBytes
	maxURLs        = MaxURLs
)

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		n, err := io.ReadFull(l.r, one[:])
		if n > 0 {
			l.over = true
			return 0, errLimit
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// parser accumulates one file's entries.
type parser struct {
	base *url.URL
	sm   *Sitemap
}

// add appends an entry from a raw loc and lastmod; it returns
// ErrTooManyURLs once MaxURLs entries are held and another comes.
func (p *parser) add(loc, lastmod string) error {
	loc = strings.TrimSpace(loc)
	u, relative, ok := resolve(p.base, loc)
	if !ok {
		p.sm.Skipped++
		return nil
	}
	if len(p.sm.Entries) == maxURLs {
		return ErrTooManyURLs
	}
	if relative {
		p.sm.Relative++
	}
	p.sm.Entries = append(p.sm.Entries, Entry{Loc: u, LastMod: ParseLastMod(lastmod)})
	return nil
}

// resolve makes loc an absolute http(s) URL, resolving a relative
// reference against base.
func resolve(base *url.URL, loc string) (abs string, relative, ok bool) {
	if loc == "" || len(loc) > MaxLocLength {
		return "", false, false
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", false, false
	}
	if !u.IsAbs() {
		if base == nil {
			return "", false, false
		}
		u, relative = base.ResolveReference(u), true
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false, false
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), relative, true
}

// text reads a plain-text sitemap: one URL per line, blank lines ignored.
func (p *parser) text(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if err := p.add(line, ""); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, errLimit) {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}
