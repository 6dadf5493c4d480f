package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// IdempotencyKey ties a client's key to the request it came with and the
// composition that request made.
type IdempotencyKey struct {
	Key           string
	RequestDigest string
	CompositionID string
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// PutIdempotencyKey records that key, sent with a request whose digest is
// requestDigest, made composition compositionID, for ttl. When the key is
// already recorded (and not expired) nothing changes and the recorded entry
// is returned: its CompositionID is then the composition the first request
// made, which the caller should answer with instead of its own. It returns
// ECONFLICT when the key was recorded for a different request, ENOTFOUND
// when the composition does not exist, and EINVALID for a ttl that is not
// positive or a key that is empty or longer than 255 bytes.
func (s *Store) PutIdempotencyKey(ctx context.Context, key, requestDigest, compositionID string, ttl time.Duration) (IdempotencyKey, error) {
	const op = "recording an idempotency key"
	if err := checkID(compositionID); err != nil {
		return IdempotencyKey{}, err
	}
	if ttl <= 0 {
		return IdempotencyKey{}, domain.Errorf(domain.EINVALID, "%s: the time to live must be positive, not %s", op, ttl)
	}
	// A few rounds at most: an entry can expire, or be purged, between the
	// insert that found it and the read that fetches it.
	for range 3 {
		k, err := scanIdempotencyKey(s.pool.QueryRow(ctx, `
			INSERT INTO idempotency_keys (key, request_digest, composition_id, expires_at)
			VALUES ($1, $2, $3, now() + $4 * interval '1 microsecond')
			ON CONFLICT (key) DO UPDATE SET request_digest = EXCLUDED.request_digest, composition_id = EXCLUDED.composition_id,
				created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
			WHERE idempotency_keys.expires_at <= now()
			RETURNING `+idempotencyColumns, key, requestDigest, compositionID, ttl.Microseconds()))
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return IdempotencyKey{}, constraintError(op, err)
		}
		k, err = s.GetIdempotencyKey(ctx, key)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			continue
		}
		if err != nil {
			return IdempotencyKey{}, err
		}
		if k.RequestDigest != requestDigest {
			return IdempotencyKey{}, domain.Errorf(domain.ECONFLICT, "idempotency key %q was already used for a different request", key)
		}
		return k, nil
	}
	return IdempotencyKey{}, errors.New(op + ": the key keeps changing under us")
}

// GetIdempotencyKey returns the entry recorded for key. It returns ENOTFOUND
// when there is none or it has expired.
func (s *Store) GetIdempotencyKey(ctx context.Context, key string) (IdempotencyKey, error) {
	k, err := scanIdempotencyKey(s.pool.QueryRow(ctx, `SELECT `+idempotencyColumns+` FROM idempotency_keys WHERE key = $1 AND expires_at > now()`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return IdempotencyKey{}, domain.Errorf(domain.ENOTFOUND, "idempotency key %q is not recorded", key)
	}
	if err != nil {
		return IdempotencyKey{}, constraintError("reading an idempotency key", err)
	}
	return k, nil
}

const idempotencyColumns = `key, request_digest, composition_id::text, created_at, expires_at`

func scanIdempotencyKey(row pgx.Row) (IdempotencyKey, error) {
	var k IdempotencyKey
	err := row.Scan(&k.Key, &k.RequestDigest, &k.CompositionID, &k.CreatedAt, &k.ExpiresAt)
	return k, err
}
