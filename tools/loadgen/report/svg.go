package report

import (
	"bytes"
	"html"
	"regexp"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Every chart has the same size, so that the runs' charts line up side by side.
const (
	width  = 6 * vg.Inch
	height = 3.4 * vg.Inch
)

// render draws p as a standalone SVG document.
func render(p *plot.Plot) ([]byte, error) {
	c := vgsvg.New(width, height)
	p.Draw(draw.New(c))
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, err
	}
	// The text is measured with the Liberation fonts compiled into the program; a reader
	// without them gets a font of about the same widths instead of the browser's serif.
	return bytes.ReplaceAll(b.Bytes(), []byte("font-family:Liberation Sans;"), []byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")), nil
}

var (
	svgStart = regexp.MustCompile(`<svg\b`)
	// xmlns names the SVG and XLink vocabularies, which HTML implies for an inline <svg>:
	// the address is a name, never fetched, and without it the page mentions no other host.
	xmlns = regexp.MustCompile(`\s+xmlns(?::xlink)?="[^"]*"`)
)

// inline turns a standalone SVG into an element of an HTML page: no XML declaration or
// comment before it, no namespace declarations, and a label for screen readers.
func inline(svg []byte, label string) []byte {
	loc := svgStart.FindIndex(svg)
	if loc == nil {
		return nil
	}
	svg = svg[loc[0]:]
	end := bytes.IndexByte(svg, '>')
	tag := xmlns.ReplaceAll(svg[:end], nil)
	var b bytes.Buffer
	b.Write(tag[:len("<svg")])
	b.WriteString(` role="img" aria-label="` + html.EscapeString(label) + `"`)
	b.Write(tag[len("<svg"):])
	b.Write(svg[end:])
	return b.Bytes()
}
