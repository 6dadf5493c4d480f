package store_test

import (
	"sync"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/domain"
)

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	first, second := newComposition(t, st, newFixture()), newComposition(t, st, newFixture())

	k, err := st.PutIdempotencyKey(ctx, "req-1", "sha256:body", first, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if k.Key != "req-1" || k.RequestDigest != "sha256:body" || k.CompositionID != first || !k.ExpiresAt.After(k.CreatedAt) {
		t.Errorf("got %+v", k)
	}
	got, err := st.GetIdempotencyKey(ctx, "req-1")
	if err != nil || got != k {
		t.Errorf("GetIdempotencyKey = %+v, %v; want %+v", got, err, k)
	}

	// The same request again: the first composition answers it.
	again, err := st.PutIdempotencyKey(ctx, "req-1", "sha256:body", second, time.Hour)
	if err != nil || again.CompositionID != first {
		t.Errorf("replay: got %+v, %v; want composition %s", again, err, first)
	}
	// A different request under the same key is refused.
	_, err = st.PutIdempotencyKey(ctx, "req-1", "sha256:other", second, time.Hour)
	wantError(t, err, domain.ECONFLICT, "req-1", "different request")

	// An expired key is gone and may be used afresh.
	if _, err := st.Pool().Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' WHERE key = 'req-1'`); err != nil {
		t.Fatal(err)
	}
	_, err = st.GetIdempotencyKey(ctx, "req-1")
	wantError(t, err, domain.ENOTFOUND, "req-1")
	fresh, err := st.PutIdempotencyKey(ctx, "req-1", "sha256:other", second, time.Minute)
	if err != nil || fresh.CompositionID != second || fresh.RequestDigest != "sha256:other" {
		t.Errorf("reuse after expiry: got %+v, %v", fresh, err)
	}

	_, err = st.PutIdempotencyKey(ctx, "req-2", "d", randomUUID(), time.Hour)
	wantError(t, err, domain.ENOTFOUND, "idempotency_keys_composition_id_fkey")
	_, err = st.PutIdempotencyKey(ctx, "", "d", first, time.Hour)
	wantError(t, err, domain.EINVALID, "idempotency_keys_key_check")
	_, err = st.PutIdempotencyKey(ctx, "req-3", "d", first, 0)
	wantError(t, err, domain.EINVALID, "time to live")
}

// TestIdempotencyKeyRace sends one request many times at once: every
// sender learns the same composition.
func TestIdempotencyKeyRace(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	const senders = 10
	ids := make([]string, senders)
	for i := range ids {
		ids[i] = newComposition(t, st, newFixture())
	}
	answers := make([]string, senders)
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			k, err := st.PutIdempotencyKey(ctx, "same", "sha256:x", ids[i], time.Hour)
			if err != nil {
				t.Error(err)
			}
			answers[i] = k.CompositionID
		})
	}
	wg.Wait()
	for _, a := range answers {
		if a != answers[0] || a == "" {
			t.Fatalf("senders were told different compositions: %v", answers)
		}
	}
}
