package store

import (
	"context"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// inTx runs fn in a transaction, committed when fn returns nil and rolled
// back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// checkID returns EINVALID unless id is a UUID in its usual text form, so a
// malformed id from a URL is reported as such rather than as a database error.
func checkID(id string) error {
	if !uuidPattern.MatchString(id) {
		return domain.Errorf(domain.EINVALID, "composition id %q is not a UUID", id)
	}
	return nil
}

// nonNilStrings makes a nil slice an empty one: text[] columns are NOT NULL.
func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
