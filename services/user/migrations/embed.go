// Package migrations embeds the users schema's SQL migrations.
package migrations

import "embed"

// FS holds the *.sql migration files.
//
//go:embed *.sql
var FS embed.FS
