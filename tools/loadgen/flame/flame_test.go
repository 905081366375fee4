package flame

import (
	"bytes"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/pprof/profile"
)

// cpuProfile builds a profile as the runtime writes one: locations leaf first, and a location
// whose lines hold an inlined function before the one it was inlined into.
func cpuProfile() *profile.Profile {
	fn := map[string]*profile.Function{}
	for i, name := range []string{"main.main", "main.serve", "github.com/lib/pq.(*conn).Exec", "encoding/json.Marshal", "syscall.write", "main.inlined"} {
		fn[name] = &profile.Function{ID: uint64(i + 1), Name: name}
	}
	loc := func(id uint64, names ...string) *profile.Location {
		l := &profile.Location{ID: id}
		for _, n := range names {
			l.Line = append(l.Line, profile.Line{Function: fn[n]})
		}
		return l
	}
	mainLoc, serve, exec, marshal, write := loc(1, "main.main"), loc(2, "main.serve"), loc(3, "github.com/lib/pq.(*conn).Exec"), loc(4, "encoding/json.Marshal"), loc(5, "syscall.write")
	inlined := loc(6, "main.inlined", "main.serve") // main.inlined inlined into main.serve
	return &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{write, exec, serve, mainLoc}, Value: []int64{3, 30e6}},
			{Location: []*profile.Location{marshal, serve, mainLoc}, Value: []int64{1, 10e6}},
			{Location: []*profile.Location{write, exec, serve, mainLoc}, Value: []int64{2, 20e6}}, // the first path again
			{Location: []*profile.Location{inlined, mainLoc}, Value: []int64{4, 40e6}},
			{Location: []*profile.Location{mainLoc}, Value: []int64{0, 0}}, // counts nothing
		},
		Location: []*profile.Location{mainLoc, serve, exec, marshal, write, inlined},
	}
}

// flat lists the tree as "path value" lines, depth first.
func flat(n *Node, prefix string, out *[]string) {
	path := prefix + n.Name
	*out = append(*out, path+" "+seconds(n.Value))
	for _, c := range n.Children {
		flat(c, path+";", out)
	}
}

func TestTreeMergesCallPathsRootFirst(t *testing.T) {
	root, err := Tree(cpuProfile())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	flat(root, "", &got)
	want := []string{
		"all 0.10 s",
		"all;main.main 0.10 s",
		"all;main.main;main.serve 0.10 s", // called directly (60 ms) and with main.inlined inlined into it (40 ms)
		"all;main.main;main.serve;encoding/json.Marshal 0.01 s",
		"all;main.main;main.serve;github.com/lib/pq.(*conn).Exec 0.05 s",
		"all;main.main;main.serve;github.com/lib/pq.(*conn).Exec;syscall.write 0.05 s",
		"all;main.main;main.serve;main.inlined 0.04 s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
}

func TestTreeRefusesAProfileWithoutSampleTypes(t *testing.T) {
	if _, err := Tree(&profile.Profile{}); err == nil {
		t.Error("no error for a profile without sample types")
	}
}

type box struct {
	Title string `xml:"title"`
	Rect  struct {
		X     float64 `xml:"x,attr"`
		Y     float64 `xml:"y,attr"`
		Width float64 `xml:"width,attr"`
	} `xml:"rect"`
	Text string `xml:"text"`
}

// boxes parses the drawing as XML (it must be well formed) and returns its boxes by title.
func boxes(t *testing.T, svg []byte) map[string]box {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	got := map[string]box{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "g" {
			var b box
			if err := dec.DecodeElement(&b, &se); err != nil {
				t.Fatal(err)
			}
			got[b.Title] = b
		}
	}
}

func TestWriteDrawsEachFrameAsWideAsItsShare(t *testing.T) {
	root, err := Tree(cpuProfile())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := Write(&b, root, "order <service>", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	got := boxes(t, b.Bytes())
	if len(got) != 7 {
		t.Fatalf("%d boxes, want one per node (7): %v", len(got), got)
	}
	full := float64(width - 2*margin)
	for title, want := range map[string]float64{
		"all: 0.10 s, 100.00%":                           full,
		"github.com/lib/pq.(*conn).Exec: 0.05 s, 50.00%": full / 2,
		"encoding/json.Marshal: 0.01 s, 10.00%":          full / 10,
		"main.inlined: 0.04 s, 40.00%":                   full * 4 / 10,
	} {
		if d := got[title].Rect.Width - want; d < -0.1 || d > 0.1 {
			t.Errorf("%q is %.1f wide, want %.1f", title, got[title].Rect.Width, want)
		}
	}
	// Callees stand on their callers: a row higher, starting within them.
	exec, write := got["github.com/lib/pq.(*conn).Exec: 0.05 s, 50.00%"], got["syscall.write: 0.05 s, 50.00%"]
	if write.Rect.Y != exec.Rect.Y-rowHeight || write.Rect.X != exec.Rect.X {
		t.Errorf("syscall.write at (%v, %v), want on top of Exec at (%v, %v)", write.Rect.X, write.Rect.Y, exec.Rect.X, exec.Rect.Y)
	}
	// Names lose their import path where they are written, and are cut to fit.
	if exec.Text != "pq.(*conn).Exec" {
		t.Errorf("Exec's label %q", exec.Text)
	}
	if m := got["encoding/json.Marshal: 0.01 s, 10.00%"]; !strings.HasSuffix(m.Text, "..") && m.Text != "json.Marshal" {
		t.Errorf("Marshal's label %q", m.Text)
	}
	for _, want := range []string{"order &lt;service&gt;", "0.10 s of CPU in all over 20s (0.01 cores on average)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the drawing lacks %q", want)
		}
	}
}

func TestWriteLeavesOutBoxesTooNarrowToSee(t *testing.T) {
	root := &Node{Name: "all", Value: 1e9, Children: []*Node{
		{Name: "wide", Value: 1e9 - 10, Children: []*Node{{Name: "deep", Value: 1e9 - 10}}},
		{Name: "thin", Value: 10, Children: []*Node{{Name: "thinner", Value: 10, Children: []*Node{{Name: "thinnest", Value: 10}}}}},
	}}
	var b bytes.Buffer
	if err := Write(&b, root, "t", 0); err != nil {
		t.Fatal(err)
	}
	for title := range boxes(t, b.Bytes()) {
		if strings.HasPrefix(title, "thin") {
			t.Errorf("%q drawn", title)
		}
	}
	if want := margin*2 + (titleRows+3)*rowHeight; !strings.Contains(b.String(), `height="`+strconv.Itoa(want)+`"`) {
		t.Errorf("the drawing is not %d high (three rows of boxes):\n%s", want, b.String()[:200])
	}
	if err := Write(&b, &Node{Name: "all"}, "empty", 0); err == nil {
		t.Error("no error for an empty profile")
	}
}

func TestShortKeepsThePackagesLastElement(t *testing.T) {
	for name, want := range map[string]string{
		"github.com/lib/pq.(*conn).Exec": "pq.(*conn).Exec",
		"net/http.(*conn).serve":         "http.(*conn).serve",
		"main.main":                      "main.main",
		"example.com/a/idempotency.Key[go.shape.struct { X example.com/b/c.T }].Take": "idempotency.Key[go.shape.struct { X example.com/b/c.T }].Take",
	} {
		if got := short(name); got != want {
			t.Errorf("short(%q) = %q, want %q", name, got, want)
		}
	}
}
