package database

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"github.com/jmoiron/sqlx"
)

// Query is SQL whose parameters are named, @name, instead of numbered. A statement composed
// of parts from several packages (a resource's own columns, an Idempotency-Key's take, an
// outbox row) then needs no arithmetic on the positions of the others' parameters. Named
// numbers the names once, when the statement is built; Args orders the values to match.
type Query struct {
	sql   string
	names []string
}

// Named numbers the parameters of text: each distinct @name becomes $1, $2, ... in the order
// of first appearance. A name is a letter or underscore followed by letters, digits and
// underscores; an @ inside a quoted literal or identifier is left alone.
func Named(text string) Query {
	var b strings.Builder
	var names []string
	index := map[string]int{}
	quote := byte(0)
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '@' && i+1 < len(text) && nameStart(text[i+1]):
			j := i + 1
			for j < len(text) && namePart(text[j]) {
				j++
			}
			name := text[i+1 : j]
			n, ok := index[name]
			if !ok {
				names = append(names, name)
				n = len(names)
				index[name] = n
			}
			fmt.Fprintf(&b, "$%d", n)
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	return Query{sql: b.String(), names: names}
}

func nameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func namePart(c byte) bool  { return nameStart(c) || c >= '0' && c <= '9' }

// SQL is the statement with numbered parameters.
func (q Query) SQL() string { return q.sql }

// Args returns the values of p in the order of the statement's parameters. A parameter p has
// no value for is an error: the statement would otherwise run with NULL in its place.
func (q Query) Args(p Params) ([]any, error) {
	args := make([]any, len(q.names))
	for i, name := range q.names {
		v, ok := p[name]
		if !ok {
			return nil, fmt.Errorf("no value for parameter @%s", name)
		}
		args[i] = v
	}
	return args, nil
}

// Params are the values of a Query's parameters, by name.
type Params map[string]any

// With returns p and more in one set; more wins where both name a parameter.
func (p Params) With(more Params) Params {
	out := make(Params, len(p)+len(more))
	maps.Copy(out, p)
	maps.Copy(out, more)
	return out
}

// NamedStmt is a Stmt whose parameters are named.
type NamedStmt struct {
	stmt  *Stmt
	query Query
}

// PrepareNamed returns a statement for q, prepared when first executed (see Prepare).
func PrepareNamed(db *sqlx.DB, q Query) *NamedStmt {
	return &NamedStmt{stmt: Prepare(db, q.SQL()), query: q}
}

// GetContext runs the statement with the values p and scans its single row into dest.
func (s *NamedStmt) GetContext(ctx context.Context, dest any, p Params) error {
	args, err := s.query.Args(p)
	if err != nil {
		return err
	}
	return s.stmt.GetContext(ctx, dest, args...)
}
