// Package migrations embeds the notifications schema's SQL migrations.
package migrations

import "embed"

// FS holds the *.sql migration files.
//
//go:embed *.sql
var FS embed.FS
