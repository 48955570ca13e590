package testsite

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"sync"
	"time"
)

// Fixed parts of the site's layout. They are constants rather than options so
// that every test, benchmark and demo describes the same shape of site.
const (
	// ItemsPerListing is the number of article.product items on a category
	// listing page.
	ItemsPerListing = 20
	// PrivatePages is the number of /private/N pages. They are linked from
	// the site but disallowed by the default robots.txt.
	PrivatePages = 3
	// navCategories caps the category links in every page's header.
	navCategories = 10
	// privateEvery: every content page whose ID is a multiple links to a
	// private page.
	privateEvery = 17
)

// fixedDate is the clock of a Site whose Options.Clock is nil, so that its
// Date and Last-Modified headers are byte-stable.
var fixedDate = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// rng is splitmix64: tiny, fast and stable across Go releases, which
// math/rand's helpers do not promise for their derived values.
type rng uint64

func newRNG(seed int64, salts ...uint64) rng {
	r := rng(uint64(seed) ^ 0x9e3779b97f4a7c15)
	for _, s := range salts {
		r ^= rng(s * 0xbf58476d1ce4e5b9)
		r.next()
	}
	return r
}

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// intn returns a value in [0, n); n must be > 0.
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// float returns a value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// layout is the link graph: products split into categories, each category
// paginated into listing pages of ItemsPerListing items.
type layout struct {
	pages      int
	categories int
}

func newLayout(pages int) layout {
	listings := (pages + ItemsPerListing - 1) / ItemsPerListing
	k := int(math.Ceil(math.Sqrt(float64(listings))))
	if k < 1 {
		k = 1
	}
	if k > pages {
		k = pages
	}
	return layout{pages: pages, categories: k}
}

// categoryRange returns the product IDs [first, last] of category c (1-based).
func (l layout) categoryRange(c int) (first, last int) {
	first = (c-1)*l.pages/l.categories + 1
	last = c * l.pages / l.categories
	return first, last
}

// categoryOf returns the category (1-based) of product id (1-based): the c
// with categoryRange(c-1).last < id <= categoryRange(c).last, that is
// ceil(id·categories/pages).
func (l layout) categoryOf(id int) int {
	return (id*l.categories + l.pages - 1) / l.pages
}

// listingPages returns the number of listing pages of category c.
func (l layout) listingPages(c int) int {
	first, last := l.categoryRange(c)
	return (last - first + ItemsPerListing) / ItemsPerListing
}

var words = [...]string{
	"alpha", "amber", "anchor", "apple", "arch", "atlas", "autumn", "axis",
	"badge", "basalt", "beacon", "birch", "blade", "bloom", "bolt", "breeze",
	"brick", "bronze", "cable", "candle", "canyon", "carbon", "cedar", "chalk",
	"cinder", "citrus", "clay", "cloud", "cobalt", "comet", "copper", "coral",
	"crane", "crest", "crystal", "dawn", "delta", "desert", "drift", "dune",
	"echo", "ember", "falcon", "fern", "field", "flint", "forest", "frost",
	"garnet", "glacier", "granite", "harbor", "hazel", "helix", "heron", "hollow",
	"indigo", "iris", "iron", "ivory", "jade", "jasper", "juniper", "kelp",
	"lagoon", "lantern", "lava", "ledger", "linen", "lotus", "lunar", "maple",
	"marble", "meadow", "mesa", "mint", "moss", "nectar", "nickel", "north",
	"oak", "ocean", "olive", "onyx", "orbit", "pebble", "pepper", "pine",
	"plume", "prism", "quartz", "quill", "rain", "raven", "reef", "ridge",
	"river", "saffron", "sage", "sand", "shadow", "silk", "slate", "solar",
	"spruce", "stone", "storm", "summit", "tide", "timber", "topaz", "torch",
	"tundra", "umber", "valley", "velvet", "vertex", "violet", "walnut", "wave",
	"willow", "winter", "wren", "yarrow", "zenith", "zephyr", "zinc", "zone",
}

var nouns = [...]string{
	"Lamp", "Chair", "Kettle", "Backpack", "Notebook", "Speaker", "Blanket", "Mug",
	"Jacket", "Clock", "Planter", "Bottle", "Wallet", "Headphones", "Shelf", "Rug",
}

func capitalize(s string) string { return string(s[0]-'a'+'A') + s[1:] }

// productTitle is stable across versions so listings never change.
func productTitle(seed int64, id int) string {
	r := newRNG(seed, 1, uint64(id))
	return capitalize(words[r.intn(len(words))]) + " " + capitalize(words[r.intn(len(words))]) + " " + nouns[r.intn(len(nouns))]
}

// productPrice is stable across versions, formatted like "€12.34".
func productPrice(seed int64, id int) string {
	r := newRNG(seed, 2, uint64(id))
	cents := 199 + int(math.Exp(r.float()*math.Log(50000)))*10 + r.intn(10)
	return "€" + strconv.Itoa(cents/100) + "." + strconv.Itoa(cents/10%10) + strconv.Itoa(cents%10)
}

func categoryTitle(seed int64, c int) string {
	r := newRNG(seed, 3, uint64(c))
	return capitalize(words[r.intn(len(words))]) + " " + nouns[r.intn(len(nouns))] + "s"
}

// pageSize draws the target size of content page id: log-normal, median at
// min·(max/min)^0.46 (≈35 KB for the default 10–150 KB), σ = ln(max/min)/6,
// clamped to [min, max].
func pageSize(seed int64, id, minSize, maxSize int) int {
	if maxSize <= minSize {
		return minSize
	}
	r := newRNG(seed, 4, uint64(id))
	u1, u2 := r.float(), r.float()
	z := math.Sqrt(-2*math.Log(1-u1)) * math.Cos(2*math.Pi*u2)
	span := math.Log(float64(maxSize) / float64(minSize))
	size := int(float64(minSize) * math.Exp(0.46*span+z*span/6))
	return min(max(size, minSize), maxSize)
}

// related returns the LinksPerPage cross links of product id: distinct
// products other than id, stable across versions.
func related(seed int64, id, pages, n int) []int {
	if pages <= 1 {
		return nil
	}
	n = min(n, pages-1)
	r := newRNG(seed, 5, uint64(id))
	out := make([]int, 0, n)
	for len(out) < n {
		j := r.intn(pages) + 1
		if j == id || contains(out, j) {
			continue
		}
		out = append(out, j)
	}
	return out
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// etagFor is strong: a content hash plus the page's version.
func etagFor(body []byte, version int) string {
	sum := sha256.Sum256(body)
	return `"v` + strconv.Itoa(version) + "-" + hex.EncodeToString(sum[:8]) + `"`
}

// page is one generated response body with its validators.
type page struct {
	body    []byte
	etag    string
	modTime time.Time
}

func (s *Site) head(b []byte, title string) []byte {
	b = append(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>"...)
	b = append(b, title...)
	b = append(b, " — Demo Shop</title>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n</head>\n<body>\n<header>\n<nav class=\"main\">\n<a href=\"/\">Home</a>\n"...)
	for c := 1; c <= min(s.layout.categories, navCategories); c++ {
		b = append(b, "<a href=\"/category/"...)
		b = strconv.AppendInt(b, int64(c), 10)
		b = append(b, "\">"...)
		b = append(b, categoryTitle(s.opts.Seed, c)...)
		b = append(b, "</a>\n"...)
	}
	return append(b, "</nav>\n</header>\n<main>\n"...)
}

func foot(b []byte, extra string) []byte {
	b = append(b, "</main>\n<footer>\n<p>Demo Shop is generated by crawlcache's test site.</p>\n"...)
	b = append(b, extra...)
	return append(b, "</footer>\n</body>\n</html>\n"...)
}

// productItem appends one article.product; href is the title link as the
// page writes it (absolute path, relative or with a fragment).
func (s *Site) productItem(b []byte, id int, href string) []byte {
	b = append(b, "<article class=\"product\" data-id=\""...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, "\">\n<h2><a href=\""...)
	b = append(b, href...)
	b = append(b, "\">"...)
	b = append(b, productTitle(s.opts.Seed, id)...)
	b = append(b, "</a></h2>\n<p class=\"price\">"...)
	b = append(b, productPrice(s.opts.Seed, id)...)
	b = append(b, "</p>\n<a class=\"more\" href=\"/products/"...)
	b = strconv.AppendInt(b, int64(id), 10)
	return append(b, "#details\">Details</a>\n</article>\n"...)
}

// renderProduct generates content page id at version v. The related links
// vary their form (absolute, relative, with a fragment) and every related
// product is linked twice, so crawlers must normalize and deduplicate.
func (s *Site) renderProduct(id, v int) []byte {
	seed := s.opts.Seed
	target := pageSize(seed, id, s.opts.MinSize, s.opts.MaxSize)
	b := make([]byte, 0, target+4096)
	title := productTitle(seed, id)
	b = s.head(b, title)
	c := s.layout.categoryOf(id)
	b = append(b, "<nav class=\"breadcrumb\"><a href=\"/\">Home</a> › <a href=\"../category/"...)
	b = strconv.AppendInt(b, int64(c), 10)
	b = append(b, "\">"...)
	b = append(b, categoryTitle(seed, c)...)
	b = append(b, "</a> › "...)
	b = append(b, title...)
	b = append(b, "</nav>\n<h1>"...)
	b = append(b, title...)
	b = append(b, "</h1>\n<div class=\"product-detail\" id=\"details\" data-id=\""...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, "\" data-version=\""...)
	b = strconv.AppendInt(b, int64(v), 10)
	b = append(b, "\">\n<p class=\"price\">"...)
	b = append(b, productPrice(seed, id)...)
	b = append(b, "</p>\n<p class=\"sku\">SKU "...)
	b = strconv.AppendInt(b, int64(1000000+id), 10)
	b = append(b, "</p>\n<p class=\"stock\">In stock: "...)
	vr := newRNG(seed, 6, uint64(id), uint64(v))
	b = strconv.AppendInt(b, int64(vr.intn(100)), 10)
	b = append(b, "</p>\n<p class=\"revision\">Revision "...)
	b = strconv.AppendInt(b, int64(v), 10)
	b = append(b, "</p>\n</div>\n<section class=\"related\">\n<h2>Related products</h2>\n"...)
	for k, j := range related(seed, id, s.layout.pages, s.opts.LinksPerPage) {
		js := strconv.Itoa(j)
		var href string
		switch k % 3 {
		case 0:
			href = "/products/" + js
		case 1:
			href = js // relative to /products/
		default:
			href = "./" + js + "#reviews"
		}
		b = s.productItem(b, j, href)
	}
	b = append(b, "</section>\n<section class=\"description\" id=\"reviews\">\n<h2>Description</h2>\n"...)
	var extra string
	if id%privateEvery == 0 {
		extra = "<p><a href=\"/private/" + strconv.Itoa(id/privateEvery%PrivatePages+1) + "\">Staff notes</a></p>\n"
	}
	tail := len("</section>\n") + len(foot(nil, extra))
	b = filler(b, &vr, target-tail)
	b = append(b, "</section>\n"...)
	return foot(b, extra)
}

// corpus is 1 MB of filler paragraphs ("<p>Words words.</p>\n") shared by
// every site: pages copy runs of whole paragraphs from a page-specific start,
// so generation costs a few memmoves rather than a loop per word.
var corpus = sync.OnceValue(func() (c struct {
	text   []byte
	starts []int // offset of each paragraph
}) {
	r := newRNG(0, 13)
	for len(c.text) < 1<<20 {
		c.starts = append(c.starts, len(c.text))
		c.text = append(c.text, "<p>"...)
		n := 40 + r.intn(80)
		for i := 0; i < n; i++ {
			w := words[r.next()%uint64(len(words))]
			if i == 0 {
				c.text = append(c.text, w[0]-'a'+'A')
				c.text = append(c.text, w[1:]...)
			} else {
				c.text = append(c.text, ' ')
				c.text = append(c.text, w...)
			}
		}
		c.text = append(c.text, ".</p>\n"...)
	}
	return c
})

// filler appends paragraphs until b is exactly target bytes long: whole
// corpus paragraphs from a start picked by r, then a last paragraph cut at a
// word and padded with spaces. It appends nothing when the markup already
// leaves no room for a paragraph.
func filler(b []byte, r *rng, target int) []byte {
	const open, closeP = "<p>", "</p>\n"
	if len(b)+len(open)+len(closeP) > target {
		return b
	}
	c := corpus()
	k := r.intn(len(c.starts))
	for {
		end := len(c.text)
		if k+1 < len(c.starts) {
			end = c.starts[k+1]
		}
		para := c.text[c.starts[k]:end]
		if len(b)+len(para)+len(open)+len(closeP) > target {
			// The last paragraph: as many words of para as fit.
			text := para[len(open) : len(para)-len(closeP)]
			room := target - len(b) - len(open) - len(closeP)
			if room < len(text) {
				text = text[:room]
				if i := bytes.LastIndexByte(text, ' '); i >= 0 {
					text = text[:i]
				}
			}
			b = append(b, open...)
			b = append(b, text...)
			for len(b)+len(closeP) < target {
				b = append(b, ' ')
			}
			return append(b, closeP...)
		}
		b = append(b, para...)
		k = (k + 1) % len(c.starts)
	}
}

// renderHome lists the categories, a few featured products, the private
// pages and the configured fault paths so that a crawl of "/" meets them all.
func (s *Site) renderHome() []byte {
	seed := s.opts.Seed
	b := make([]byte, 0, 8192)
	b = s.head(b, "Home")
	b = append(b, "<h1>Demo Shop</h1>\n<section class=\"categories\">\n<h2>All categories</h2>\n<ul>\n"...)
	for c := 1; c <= s.layout.categories; c++ {
		b = append(b, "<li><a href=\"category/"...) // relative to "/"
		b = strconv.AppendInt(b, int64(c), 10)
		b = append(b, "\">"...)
		b = append(b, categoryTitle(seed, c)...)
		b = append(b, "</a></li>\n"...)
	}
	b = append(b, "</ul>\n</section>\n<section class=\"featured\">\n<h2>Featured</h2>\n"...)
	for _, j := range related(seed, 0, s.layout.pages, s.opts.LinksPerPage) {
		b = s.productItem(b, j, "/products/"+strconv.Itoa(j))
	}
	b = append(b, "</section>\n"...)
	extra := "<ul class=\"staff\">\n"
	for k := 1; k <= PrivatePages; k++ {
		extra += "<li><a href=\"/private/" + strconv.Itoa(k) + "\">Staff page " + strconv.Itoa(k) + "</a></li>\n"
	}
	extra += "</ul>\n"
	if paths := s.faultLinks(); len(paths) > 0 {
		extra += "<ul class=\"faults\">\n"
		for _, p := range paths {
			extra += "<li><a href=\"" + p + "\">" + p + "</a></li>\n"
		}
		extra += "</ul>\n"
	}
	return foot(b, extra)
}

// renderListing is page p of category c. Pagination links use relative
// query-only references and both orders of the query parameters.
func (s *Site) renderListing(c, p int) []byte {
	seed := s.opts.Seed
	n := s.layout.listingPages(c)
	title := categoryTitle(seed, c)
	b := make([]byte, 0, 16384)
	b = s.head(b, title+" — page "+strconv.Itoa(p))
	b = append(b, "<h1>"...)
	b = append(b, title...)
	b = append(b, " <small>page "...)
	b = strconv.AppendInt(b, int64(p), 10)
	b = append(b, " of "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "</small></h1>\n<section class=\"listing\">\n"...)
	first, last := s.layout.categoryRange(c)
	from := first + (p-1)*ItemsPerListing
	for id := from; id <= min(last, from+ItemsPerListing-1); id++ {
		b = s.productItem(b, id, "../products/"+strconv.Itoa(id))
	}
	b = append(b, "</section>\n<nav class=\"pagination\">\n"...)
	cat := "/category/" + strconv.Itoa(c)
	pageRef := func(q int, swapped bool) string {
		switch {
		case q == 1:
			return cat
		case swapped:
			return "?per=" + strconv.Itoa(ItemsPerListing) + "&page=" + strconv.Itoa(q)
		default:
			return "?page=" + strconv.Itoa(q) + "&per=" + strconv.Itoa(ItemsPerListing)
		}
	}
	link := func(href, text, rel string) {
		b = append(b, "<a href=\""...)
		b = append(b, href...)
		if rel != "" {
			b = append(b, "\" rel=\""...)
			b = append(b, rel...)
		}
		b = append(b, "\">"...)
		b = append(b, text...)
		b = append(b, "</a>\n"...)
	}
	if p > 1 {
		link(pageRef(p-1, false), "Previous", "prev")
	}
	for q := max(1, p-3); q <= min(n, p+3); q++ {
		if q != p {
			link(pageRef(q, false), strconv.Itoa(q), "")
		}
	}
	if p < n {
		link(pageRef(p+1, !s.opts.SortedQueries), "Next", "next")
		link(pageRef(n, false), "Last", "")
	}
	b = append(b, "</nav>\n"...)
	return foot(b, "")
}

// renderPrivate is a small page under /private/, disallowed by robots.txt.
func (s *Site) renderPrivate(k int) []byte {
	b := s.head(make([]byte, 0, 4096), "Staff page "+strconv.Itoa(k))
	b = append(b, "<h1>Staff page "...)
	b = strconv.AppendInt(b, int64(k), 10)
	b = append(b, "</h1>\n<p>Robots must not fetch this page.</p>\n"...)
	return foot(b, "")
}
