// Package valuesdoc writes the values tables of the chart's README from the values files
// themselves: every key with its default and the comments written above it or after it, so
// that the README and the values cannot disagree (a test in tools/deploycheck compares them,
// and cmd/valuesdoc rewrites the tables).
//
// A key gets a row when its value is a leaf (a scalar, a list, a map written in flow style
// such as {cpu: 50m}, or an empty map), and when it is a map whose key carries a comment (the
// row then describes its keys, which follow). Every leaf must be described, by its own
// comment or its parent map's: an undocumented value is an error.
//
// In a README, a table sits between two markers:
//
//	<!-- values table: [prefix=<service>] values.yaml... -->
//	<!-- end of values table -->
//
// naming the values files (relative to the chart) and what to put before their keys. Given
// several files, one table holds them all: a key whose default or description differs between
// the files says so per file (named after its chart's folder), and a key that only some of
// them have says which.
package valuesdoc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Row is one line of a values table.
type Row struct {
	Key         string
	Default     string // YAML in flow style; empty for a map described as a whole
	Description string
}

// Rows reads a values file into its table rows, in the file's order, each key prefixed with
// prefix (and a dot) when prefix is not empty.
func Rows(values []byte, prefix string) ([]Row, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(values, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("the values are not a map")
	}
	var rows []Row
	var errs []error
	walk(root, prefix, false, &rows, &errs)
	return rows, errors.Join(errs...)
}

// walk adds the rows of a block map's keys. described says whether the map itself has a
// description, which then covers keys without one of their own.
func walk(m *yaml.Node, prefix string, described bool, rows *[]Row, errs *[]error) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		key := k.Value
		if prefix != "" {
			key = prefix + "." + k.Value
		}
		desc := comment(k.HeadComment, k.LineComment, v.LineComment)
		if v.Kind == yaml.MappingNode && v.Style&yaml.FlowStyle == 0 && len(v.Content) > 0 {
			if desc != "" {
				*rows = append(*rows, Row{Key: key, Description: desc})
			}
			walk(v, key, desc != "", rows, errs)
			continue
		}
		if desc == "" && !described {
			*errs = append(*errs, fmt.Errorf("%s (line %d) has no comment, nor has the map it is in", key, k.Line))
		}
		*rows = append(*rows, Row{Key: key, Default: flow(v), Description: desc})
	}
}

// comment joins comments into one line of prose, without their #.
func comment(parts ...string) string {
	var words []string
	for _, p := range parts {
		for line := range strings.SplitSeq(p, "\n") {
			line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
			if line != "" {
				words = append(words, line)
			}
		}
	}
	return strings.Join(words, " ")
}

// flow writes a value on one line, in YAML's flow style and without comments.
func flow(v *yaml.Node) string {
	c := plain(v)
	out, err := yaml.Marshal(c)
	if err != nil { // a node that came out of the parser marshals
		panic(err)
	}
	return strings.TrimSpace(string(out))
}

// plain copies a node in flow style, without its comments.
func plain(v *yaml.Node) *yaml.Node {
	c := *v
	c.HeadComment, c.LineComment, c.FootComment = "", "", ""
	if c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode {
		c.Style |= yaml.FlowStyle
	}
	c.Content = nil
	for _, n := range v.Content {
		c.Content = append(c.Content, plain(n))
	}
	return &c
}

// Source is one values file of a merged table: its name (its chart's folder) and rows.
type Source struct {
	Name string
	Rows []Row
}

// Variant is a default or a description as the files named have it.
type Variant struct {
	Names []string
	Value string
}

// Merged is a row of several values files: each variant of its default and description, and
// the files that have the key when not all of them do.
type Merged struct {
	Key                    string
	Defaults, Descriptions []Variant
	Only                   []string
}

// Merge makes one table of several values files with the same prefix: each key once, in the
// order the files give them.
func Merge(sources []Source) []Merged {
	var out []Merged
	at := map[string]int{} // key -> its row in out
	for _, s := range sources {
		for _, r := range s.Rows {
			i, ok := at[r.Key]
			if !ok {
				i = len(out)
				at[r.Key] = i
				out = append(out, Merged{Key: r.Key})
			}
			m := &out[i]
			m.Defaults = addVariant(m.Defaults, s.Name, r.Default)
			m.Descriptions = addVariant(m.Descriptions, s.Name, r.Description)
			m.Only = append(m.Only, s.Name)
		}
	}
	for i := range out {
		if len(out[i].Only) == len(sources) {
			out[i].Only = nil
		}
	}
	return out
}

func addVariant(vs []Variant, name, value string) []Variant {
	for i := range vs {
		if vs[i].Value == value {
			vs[i].Names = append(vs[i].Names, name)
			return vs
		}
	}
	return append(vs, Variant{[]string{name}, value})
}

// Table writes rows as a Markdown table: key, default, description.
func Table(rows []Row) string {
	var b strings.Builder
	b.WriteString(header)
	for _, r := range rows {
		line(&b, r.Key, yamlCell(r.Default), prose(r.Description))
	}
	return b.String()
}

// MergedTable writes merged rows as a Markdown table: a default or description that differs
// between the files is given per file ("user, order: ...", one a line), and a key that only
// some files have names them.
func MergedTable(rows []Merged) string {
	var b strings.Builder
	b.WriteString(header)
	for _, r := range rows {
		desc := variants(r.Descriptions, prose)
		if r.Only != nil {
			desc = strings.TrimSpace("(" + strings.Join(r.Only, ", ") + " only) " + desc)
		}
		line(&b, r.Key, variants(r.Defaults, yamlCell), desc)
	}
	return b.String()
}

// variants writes each variant after the names of the files that have it, one a line.
func variants(vs []Variant, md func(string) string) string {
	if len(vs) == 1 {
		return md(vs[0].Value)
	}
	var parts []string
	for _, v := range vs {
		parts = append(parts, strings.Join(v.Names, ", ")+": "+md(v.Value))
	}
	return strings.Join(parts, "<br>")
}

const header = "| Key | Default | Description |\n|---|---|---|\n"

func line(b *strings.Builder, key, def, desc string) {
	fmt.Fprintf(b, "| %s | %s | %s |\n", cell(codeSpan(key)), cell(def), cell(desc))
}

// yamlCell writes a default as code; none (a map described as a whole) stays empty.
func yamlCell(s string) string {
	if s == "" {
		return ""
	}
	return codeSpan(s)
}

// codeSpan writes s as Markdown code, with doubled backticks if s holds one.
func codeSpan(s string) string {
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// prose escapes what Markdown would take for HTML (<release>) outside the comment's own code
// spans.
func prose(s string) string {
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(parts[i])
	}
	return strings.Join(parts, "`")
}

// cell escapes the column separator, which GitHub's tables take even inside code.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

var (
	beginRE = regexp.MustCompile(`(?m)^<!-- values table: (.*) -->\n`)
	endLine = "<!-- end of values table -->\n"
)

// Update rewrites every values table of a README, reading the values files it names from
// chartDir.
func Update(readme []byte, chartDir string) ([]byte, error) {
	var out bytes.Buffer
	rest := readme
	found := false
	for {
		loc := beginRE.FindSubmatchIndex(rest)
		if loc == nil {
			break
		}
		found = true
		out.Write(rest[:loc[1]])
		table, err := tableOf(strings.Fields(string(rest[loc[2]:loc[3]])), chartDir)
		if err != nil {
			return nil, err
		}
		out.WriteString(table)
		end := bytes.Index(rest[loc[1]:], []byte(endLine))
		if end < 0 {
			return nil, fmt.Errorf("%q without %q", rest[loc[0]:loc[1]-1], strings.TrimSpace(endLine))
		}
		rest = rest[loc[1]+end:]
	}
	if !found {
		return nil, errors.New("no values table marker (<!-- values table: values.yaml -->)")
	}
	out.Write(rest)
	return out.Bytes(), nil
}

// tableOf writes the table of a marker's fields: an optional prefix=, then values files.
func tableOf(fields []string, chartDir string) (string, error) {
	prefix := ""
	if len(fields) > 0 && strings.HasPrefix(fields[0], "prefix=") {
		prefix = strings.TrimPrefix(fields[0], "prefix=")
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return "", errors.New("a values table marker names no values file")
	}
	var sources []Source
	seen := map[string]bool{}
	for _, f := range fields {
		b, err := os.ReadFile(filepath.Join(chartDir, f))
		if err != nil {
			return "", err
		}
		rows, err := Rows(b, prefix)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		name := filepath.Base(filepath.Dir(filepath.Join(chartDir, f)))
		if seen[name] {
			return "", fmt.Errorf("values files %v: two in the folder %s", fields, name)
		}
		seen[name] = true
		sources = append(sources, Source{Name: name, Rows: rows})
	}
	if len(sources) == 1 {
		return Table(sources[0].Rows), nil
	}
	return MergedTable(Merge(sources)), nil
}
