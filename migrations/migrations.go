// Package migrations embeds snapcompose's schema migrations: golang-migrate
// SQL files named NNNNNN_name.up.sql and NNNNNN_name.down.sql.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
