// Package flame draws a CPU profile (pprof's format, as /debug/pprof/profile serves it) as a
// flame graph in one SVG file: a box per function on a call path, as wide as the CPU spent in
// it and in what it called, its callers below it. The page needs no script and no font of its
// own, so it can be committed beside the docs and read in any browser; hovering a box shows
// the function's name, seconds and share.
package flame

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"html"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// Node is a function on one call path: Value is what it and its callees spent, in the
// profile's unit (nanoseconds of CPU for a CPU profile).
type Node struct {
	Name     string
	Value    int64
	Children []*Node // by name, as a flame graph orders them: the x axis is not time
}

// Tree merges the profile's samples into one tree of call paths, outermost caller at the
// root's children. It reads the sample type named cpu (a CPU profile) or, failing that, the
// last one. Functions inlined into others are frames of their own, as pprof shows them.
func Tree(p *profile.Profile) (*Node, error) {
	index := len(p.SampleType) - 1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			index = i
		}
	}
	if index < 0 {
		return nil, fmt.Errorf("the profile has no sample types")
	}
	root := &Node{Name: "all"}
	for _, s := range p.Sample {
		v := s.Value[index]
		if v == 0 {
			continue
		}
		root.Value += v
		n := root
		// Locations run from the leaf to the root; the lines of one location from the
		// innermost inlined function to the function it was inlined into.
		for i := len(s.Location) - 1; i >= 0; i-- {
			loc := s.Location[i]
			if len(loc.Line) == 0 {
				n = n.child(fmt.Sprintf("0x%x", loc.Address), v)
				continue
			}
			for j := len(loc.Line) - 1; j >= 0; j-- {
				n = n.child(loc.Line[j].Function.Name, v)
			}
		}
	}
	root.sort()
	return root, nil
}

func (n *Node) child(name string, v int64) *Node {
	for _, c := range n.Children {
		if c.Name == name {
			c.Value += v
			return c
		}
	}
	c := &Node{Name: name, Value: v}
	n.Children = append(n.Children, c)
	return c
}

func (n *Node) sort() {
	slices.SortFunc(n.Children, func(a, b *Node) int { return cmp.Compare(a.Name, b.Name) })
	for _, c := range n.Children {
		c.sort()
	}
}

// The drawing's geometry, in SVG user units (pixels).
const (
	width     = 1200
	rowHeight = 16
	margin    = 10
	titleRows = 2   // the title and the line under it
	minWidth  = 1   // boxes narrower than this are left out (they would be all but invisible)
	charWidth = 6.2 // about the advance of an 11 px sans-serif character: how much of a name fits
)

// Write draws the tree as a flame graph. title heads the drawing; duration, when not zero,
// is the profile's wall time, so that the line under the title can say how many cores the
// process used on average.
func Write(w io.Writer, root *Node, title string, duration time.Duration) error {
	if root.Value <= 0 {
		return fmt.Errorf("the profile has no samples")
	}
	scale := float64(width-2*margin) / float64(root.Value)
	height := margin*2 + (titleRows+root.depth(scale))*rowHeight
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Arial,Helvetica,sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#fdfdf6"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14">%s</text>`+"\n", margin, margin+12, html.EscapeString(title))
	sub := fmt.Sprintf("%s of CPU in all", seconds(root.Value))
	if duration > 0 {
		sub += fmt.Sprintf(" over %s (%.2f cores on average)", duration.Round(time.Second), float64(root.Value)/float64(duration.Nanoseconds()))
	}
	sub += "; a box's width is the CPU of the function and what it called, its callers below it. Hover for names."
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#555">%s</text>`+"\n", margin, margin+12+rowHeight, html.EscapeString(sub))
	bottom := height - margin // the root's row ends here; callees go up
	root.draw(&b, root.Value, margin, bottom, scale)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// depth is how many rows the boxes wide enough to draw take, the root's included.
func (n *Node) depth(scale float64) int {
	d := 0
	for _, c := range n.Children {
		if float64(c.Value)*scale >= minWidth {
			d = max(d, c.depth(scale))
		}
	}
	return d + 1
}

func (n *Node) draw(b *strings.Builder, total int64, x float64, bottom int, scale float64) {
	w := float64(n.Value) * scale
	y := bottom - rowHeight
	label := fmt.Sprintf("%s: %s, %.2f%%", n.Name, seconds(n.Value), 100*float64(n.Value)/float64(total))
	fmt.Fprintf(b, `<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" stroke="#fdfdf6" stroke-width="0.5"/>`,
		html.EscapeString(label), x, y, w, rowHeight-1, color(n.Name))
	if fit := int((w - 6) / charWidth); fit >= 3 {
		text := short(n.Name)
		if len(text) > fit {
			text = text[:fit-2] + ".."
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%d">%s</text>`, x+3, y+rowHeight-4, html.EscapeString(text))
	}
	b.WriteString("</g>\n")
	for _, c := range n.Children {
		if cw := float64(c.Value) * scale; cw >= minWidth {
			c.draw(b, total, x, y, scale)
		}
		x += float64(c.Value) * scale
	}
}

// short drops a function's import path, keeping its package's last element:
// github.com/lib/pq.(*conn).Exec is pq.(*conn).Exec. Slashes in a receiver or in type
// arguments are not the path's. The tooltip keeps the whole name.
func short(name string) string {
	path := name
	if i := strings.IndexAny(name, "(["); i >= 0 {
		path = name[:i]
	}
	return name[strings.LastIndex(path, "/")+1:]
}

// color gives every package its own warm colour, the same in every drawing, so that a
// package's functions are seen together; the runtime's and the kernel's calls are grey-blue.
func color(name string) string {
	pkg := short(name)
	if i := strings.Index(pkg, "."); i > 0 {
		pkg = pkg[:i]
	}
	if pkg == "runtime" || pkg == "syscall" || strings.HasPrefix(name, "internal/") {
		return "#a8bdd6"
	}
	h := fnv.New32a()
	h.Write([]byte(pkg))
	v := h.Sum32()
	return fmt.Sprintf("rgb(%d,%d,%d)", 220+v%36, 110+(v>>8)%110, 50+(v>>16)%50)
}

func seconds(ns int64) string {
	return fmt.Sprintf("%.2f s", float64(ns)/1e9)
}
