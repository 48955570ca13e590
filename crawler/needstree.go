package crawler

import (
	"bytes"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// readPage is the tokenizer's first pass over a page: the href of its
// first <base href>, and whether the page needs its parse tree to find
// the links the parser would (needsTree's cases).
//
// The tree builder (HTML's, x/net/html's, goquery's) does not keep every
// start tag where it is written, as the tokenizer sees it:
//   - in <svg> and <math> (foreign content) <style>, <title> and the like
//     hold elements, not text, CDATA sections hold text, attributes such
//     as xlink:href are renamed, and some tags break back out to HTML;
//   - <image> becomes <img>; <frameset> drops the rest of the body and
//     <frame> outside one is dropped;
//   - a second <html> or <body> tag adds its attributes to the first;
//   - a <template> whose content holds table parts is read as a table;
//   - an element written straight inside a table (not in a cell or a
//     caption) is moved before the table ("foster parenting"), so that
//     its links come before the table's in the tree.
//
// A page with any of these is parsed instead. The table check follows
// the cells a table has open: an element start tag while a table is the
// innermost open table part is enough (conservatively, whatever it is).
func readPage(body []byte) (baseHref string, hasBase, tree bool) {
	z := html.NewTokenizer(bytes.NewReader(body))
	var open []bool // open tables (false) and, within them, cells or captions (true)
	htmls, bodies, templates := 0, 0, 0
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			return baseHref, hasBase, false
		case html.StartTagToken, html.SelfClosingTagToken:
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if a == atom.Template && templates > 0 {
				templates--
			}
			open = closeTablePart(open, a)
			continue
		default:
			continue
		}
		name, hasAttr := z.TagName()
		a := atom.Lookup(name)
		switch a {
		case atom.Svg, atom.Math, atom.Image, atom.Frameset, atom.Frame:
			return "", false, true
		case atom.Template:
			templates++
		case atom.Caption, atom.Colgroup, atom.Col, atom.Tbody, atom.Thead, atom.Tfoot, atom.Tr, atom.Td, atom.Th:
			if templates > 0 {
				return "", false, true // a template of table parts is read in table modes
			}
		case atom.Html:
			htmls++
		case atom.Body:
			bodies++
		case atom.Base:
			for hasAttr && !hasBase {
				var k, v []byte
				k, v, hasAttr = z.TagAttr()
				if string(k) == "href" {
					baseHref, hasBase = string(v), true
				}
			}
		}
		if htmls > 1 || bodies > 1 {
			return "", false, true
		}
		var fostered bool
		if open, fostered = openTablePart(open, a); fostered {
			return "", false, true
		}
	}
}

// openTablePart follows a start tag through the open table parts and
// reports whether the parser would foster-parent the element.
func openTablePart(open []bool, a atom.Atom) ([]bool, bool) {
	inTable := len(open) > 0 && !open[len(open)-1]
	inCell := len(open) > 0 && open[len(open)-1]
	switch a {
	case atom.Table:
		if inTable {
			return open, true // a table in a table closes the first: parse it
		}
		return append(open, false), false
	case atom.Td, atom.Th, atom.Caption:
		if inCell {
			return open, false // closes the cell and opens the next
		}
		if inTable {
			return append(open, true), false
		}
		return open, false
	case atom.Tr, atom.Tbody, atom.Thead, atom.Tfoot, atom.Col, atom.Colgroup:
		if inCell {
			return open[:len(open)-1], false // closes the cell
		}
		return open, false
	}
	return open, inTable
}

// closeTablePart follows an end tag through the open table parts.
func closeTablePart(open []bool, a atom.Atom) []bool {
	inCell := len(open) > 0 && open[len(open)-1]
	switch a {
	case atom.Td, atom.Th, atom.Caption, atom.Tr, atom.Tbody, atom.Thead, atom.Tfoot:
		if inCell {
			return open[:len(open)-1]
		}
	case atom.Table:
		for len(open) > 0 {
			cell := open[len(open)-1]
			open = open[:len(open)-1]
			if !cell {
				break
			}
		}
	}
	return open
}
