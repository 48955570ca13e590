package testsite

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
)

// The script-built shop under /app/: the same products as the static shop,
// but every page is an empty shell whose product list, links and titles a
// script (/static/shop.js) builds from a JSON API (/api/...), with a
// stylesheet (/static/shop.css). A crawler that does not run scripts finds
// no item and no link to follow there; one that renders the pages finds
// them all. The shell links nowhere but /app/, and the static shop does not
// link to /app/, so crawls of "/" are unchanged.
//
//	/app/                         → GET /api/categories
//	/app/category/N[?page=P]      → GET /api/category/N?page=P
//	/app/products/N               → GET /api/products/N
//
// Every response carries an ETag and a Last-Modified and answers
// conditional requests with 304, like the static pages. The product API
// follows Change (a changed product gets a new version in its JSON); the
// shells, the script, the stylesheet and the listings never change.
const (
	// AppPrefix is the path of the script-built shop's entry page.
	AppPrefix = "/app/"
	// AppScript and AppStylesheet are the paths of its script and
	// stylesheet.
	AppScript     = "/static/shop.js"
	AppStylesheet = "/static/shop.css"
	// AppReadySelector matches once the script has built a page (its main
	// element then has data-state="ready"), for a renderer's wait.
	AppReadySelector = `main[data-state="ready"]`
)

// AppURLs returns, sorted and normalized, every page of the script-built
// shop a rendering crawl of base+"/app/" that stays under /app/ reaches:
// the entry page, every listing page and every product page.
func (s *Site) AppURLs(base string) []string {
	base = strings.TrimSuffix(base, "/")
	out := []string{base + AppPrefix}
	for c := 1; c <= s.layout.categories; c++ {
		out = append(out, base+appListingPath(c, 1))
		for p := 2; p <= s.layout.listingPages(c); p++ {
			out = append(out, base+appListingPath(c, p))
		}
	}
	for id := 1; id <= s.opts.Pages; id++ {
		out = append(out, base+"/app/products/"+strconv.Itoa(id))
	}
	sort.Strings(out)
	return out
}

// appListingPath is the normalized path of listing page p of category c in
// the script-built shop.
func appListingPath(c, p int) string {
	if p == 1 {
		return "/app/category/" + strconv.Itoa(c)
	}
	return "/app/category/" + strconv.Itoa(c) + "?page=" + strconv.Itoa(p)
}

// lookupApp answers the paths of the script-built shop; ok is false for
// any other path.
func (s *Site) lookupApp(path, query string) (p *page, contentType string, ok bool) {
	const (
		html = "text/html; charset=utf-8"
		js   = "application/json"
	)
	switch {
	case path == AppScript:
		return s.cached(path, 0, func(int) []byte { return []byte(appScript) }), "text/javascript; charset=utf-8", true
	case path == AppStylesheet:
		return s.cached(path, 0, func(int) []byte { return []byte(appStylesheet) }), "text/css; charset=utf-8", true
	case path == AppPrefix:
		return s.cached(path, 0, func(int) []byte { return appShell("Demo Shop") }), html, true
	case strings.HasPrefix(path, "/app/category/"):
		c, ok := parseID(path[len("/app/category/"):], s.layout.categories)
		if !ok {
			return nil, "", true
		}
		pg, ok := s.listingPage(c, query)
		if !ok {
			return nil, "", true
		}
		return s.cached(appListingPath(c, pg), 0, func(int) []byte { return appShell(categoryTitle(s.opts.Seed, c)) }), html, true
	case strings.HasPrefix(path, "/app/products/"):
		if _, ok := parseID(path[len("/app/products/"):], s.opts.Pages); !ok {
			return nil, "", true
		}
		return s.cached(path, 0, func(int) []byte { return appShell("Product") }), html, true
	case path == "/api/categories":
		return s.cached(path, 0, func(int) []byte { return s.apiCategories() }), js, true
	case strings.HasPrefix(path, "/api/category/"):
		c, ok := parseID(path[len("/api/category/"):], s.layout.categories)
		if !ok {
			return nil, "", true
		}
		pg, ok := s.listingPage(c, query)
		if !ok {
			return nil, "", true
		}
		key := "/api/category/" + strconv.Itoa(c) + "?page=" + strconv.Itoa(pg)
		return s.cached(key, 0, func(int) []byte { return s.apiListing(c, pg) }), js, true
	case strings.HasPrefix(path, "/api/products/"):
		id, ok := parseID(path[len("/api/products/"):], s.opts.Pages)
		if !ok {
			return nil, "", true
		}
		// Not kept: Change forgets only the static page's body, and this
		// one is small.
		s.pmu.Lock()
		v, mod := s.versions[id], s.modTimes[id]
		s.pmu.Unlock()
		body := s.apiProduct(id, v)
		return &page{body: body, etag: etagFor(body, v), modTime: mod}, js, true
	case strings.HasPrefix(path, "/app/"), strings.HasPrefix(path, "/api/"), strings.HasPrefix(path, "/static/"):
		return nil, "", true
	}
	return nil, "", false
}

// listingPage reads the page parameter of a listing query (default 1).
func (s *Site) listingPage(c int, query string) (int, bool) {
	p := 1
	for _, kv := range strings.Split(query, "&") {
		if v, ok := strings.CutPrefix(kv, "page="); ok {
			if p, ok = parseID(v, s.layout.listingPages(c)); !ok {
				return 0, false
			}
		}
	}
	return p, true
}

// appShell is the HTML of every script-built page: a stylesheet, an empty
// main element and the script. No product, price or link but /app/.
func appShell(title string) []byte {
	return []byte(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>` + title + ` — Demo Shop</title>
<link rel="stylesheet" href="` + AppStylesheet + `">
</head>
<body>
<header><nav class="main"><a href="/app/">Demo Shop</a></nav></header>
<main id="app" data-state="loading"><p class="loading">Loading…</p></main>
<script src="` + AppScript + `"></script>
</body>
</html>
`)
}

// apiItem is one product in the API's lists.
type apiItem struct {
	ID    int    `json:"id"`
	Title string `json:"title"`
	Price string `json:"price"`
}

func (s *Site) apiItem(id int) apiItem {
	return apiItem{ID: id, Title: productTitle(s.opts.Seed, id), Price: productPrice(s.opts.Seed, id)}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs of strings and ints are marshalled
	}
	return append(b, '\n')
}

func (s *Site) apiCategories() []byte {
	type category struct {
		ID    int    `json:"id"`
		Title string `json:"title"`
	}
	out := struct {
		Categories []category `json:"categories"`
	}{}
	for c := 1; c <= s.layout.categories; c++ {
		out.Categories = append(out.Categories, category{ID: c, Title: categoryTitle(s.opts.Seed, c)})
	}
	return mustJSON(out)
}

func (s *Site) apiListing(c, p int) []byte {
	out := struct {
		Category int       `json:"category"`
		Title    string    `json:"title"`
		Page     int       `json:"page"`
		Pages    int       `json:"pages"`
		Products []apiItem `json:"products"`
	}{Category: c, Title: categoryTitle(s.opts.Seed, c), Page: p, Pages: s.layout.listingPages(c)}
	first, last := s.layout.categoryRange(c)
	from := first + (p-1)*ItemsPerListing
	for id := from; id <= min(last, from+ItemsPerListing-1); id++ {
		out.Products = append(out.Products, s.apiItem(id))
	}
	return mustJSON(out)
}

func (s *Site) apiProduct(id, v int) []byte {
	vr := newRNG(s.opts.Seed, 6, uint64(id), uint64(v))
	out := struct {
		apiItem
		Category int       `json:"category"`
		Version  int       `json:"version"`
		Stock    int       `json:"stock"`
		Related  []apiItem `json:"related"`
	}{apiItem: s.apiItem(id), Category: s.layout.categoryOf(id), Version: v, Stock: vr.intn(100)}
	for _, j := range related(s.opts.Seed, id, s.layout.pages, s.opts.LinksPerPage) {
		out.Related = append(out.Related, s.apiItem(j))
	}
	return mustJSON(out)
}

// appStylesheet is /static/shop.css.
const appStylesheet = `body { font-family: sans-serif; margin: 0 auto; max-width: 60em; }
article.product { border: 1px solid #ccc; margin: .5em 0; padding: .5em; }
.price { font-weight: bold; }
main[data-state="loading"] .loading { color: #888; }
`

// appScript is /static/shop.js: it builds the page from the API and marks
// main data-state="ready" (or "error").
const appScript = `(function () {
  "use strict";
  var main = document.getElementById("app");
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function item(p) {
    var a = el("article", {"class": "product", "data-id": String(p.id)});
    var h = el("h2");
    h.appendChild(el("a", {href: "/app/products/" + p.id}, p.title));
    a.appendChild(h);
    a.appendChild(el("p", {"class": "price"}, p.price));
    return a;
  }
  function get(url) {
    return fetch(url, {headers: {"Accept": "application/json"}}).then(function (r) {
      if (!r.ok) { throw new Error(url + ": " + r.status); }
      return r.json();
    });
  }
  function categories(d) {
    main.appendChild(el("h1", {}, "Demo Shop"));
    var ul = el("ul", {"class": "categories"});
    d.categories.forEach(function (c) {
      var li = el("li");
      li.appendChild(el("a", {href: "/app/category/" + c.id}, c.title));
      ul.appendChild(li);
    });
    main.appendChild(ul);
  }
  function listing(d) {
    document.title = d.title + " — Demo Shop";
    main.appendChild(el("h1", {}, d.title));
    var sec = el("section", {"class": "listing"});
    d.products.forEach(function (p) { sec.appendChild(item(p)); });
    main.appendChild(sec);
    var nav = el("nav", {"class": "pagination"});
    var base = "/app/category/" + d.category;
    if (d.page > 1) { nav.appendChild(el("a", {href: d.page === 2 ? base : base + "?page=" + (d.page - 1), rel: "prev"}, "Previous")); }
    if (d.page < d.pages) { nav.appendChild(el("a", {href: base + "?page=" + (d.page + 1), rel: "next"}, "Next")); }
    main.appendChild(nav);
  }
  function product(d) {
    document.title = d.title + " — Demo Shop";
    main.appendChild(el("h1", {}, d.title));
    var det = el("div", {"class": "product-detail", "data-id": String(d.id), "data-version": String(d.version)});
    det.appendChild(el("p", {"class": "price"}, d.price));
    det.appendChild(el("p", {"class": "stock"}, "In stock: " + d.stock));
    main.appendChild(det);
    var rel = el("section", {"class": "related"});
    rel.appendChild(el("h2", {}, "Related products"));
    d.related.forEach(function (p) { rel.appendChild(item(p)); });
    main.appendChild(rel);
  }
  var path = location.pathname, page = new URLSearchParams(location.search).get("page") || "1", m, work;
  if (path === "/app/") {
    work = get("/api/categories").then(categories);
  } else if ((m = path.match(/^\/app\/category\/(\d+)$/))) {
    work = get("/api/category/" + m[1] + "?page=" + page).then(listing);
  } else if ((m = path.match(/^\/app\/products\/(\d+)$/))) {
    work = get("/api/products/" + m[1]).then(product);
  } else {
    work = Promise.reject(new Error("no such page"));
  }
  work.then(function () {
    main.querySelector(".loading").remove();
    main.setAttribute("data-state", "ready");
  }, function (err) {
    main.setAttribute("data-state", "error");
    main.appendChild(el("p", {"class": "error"}, String(err)));
  });
})();
`
