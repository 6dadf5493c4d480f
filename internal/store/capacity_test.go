package store_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/store"
)

func TestReserveAndRelease(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	capacity := domain.Resources{CPUMillicores: 8000, MemoryBytes: 32e9, DiskBytes: 1e12}
	if err := st.UpsertPool(ctx, "eu-1", capacity); err != nil {
		t.Fatal(err)
	}
	a, b := newComposition(t, st, newFixture()), newComposition(t, st, newFixture())
	ra, err := st.Reserve(ctx, "eu-1", a, domain.Resources{CPUMillicores: 5000, MemoryBytes: 16e9, DiskBytes: 1e11})
	if err != nil {
		t.Fatal(err)
	}
	if ra.ID == 0 || ra.Pool != "eu-1" || ra.CompositionID != a || ra.CreatedAt.IsZero() {
		t.Errorf("got %+v", ra)
	}

	// b asks for more than is left: refused, saying what is short and by how much.
	_, err = st.Reserve(ctx, "eu-1", b, domain.Resources{CPUMillicores: 4000, MemoryBytes: 20e9, DiskBytes: 1e11})
	wantError(t, err, domain.EINFEASIBLE, "cpu: short by 1 core", "memory: short by 4GB")
	if strings.Contains(err.Error(), "disk") {
		t.Errorf("disk fits, but the error mentions it: %v", err)
	}

	usage, err := st.PoolUsage(ctx, "eu-1")
	if err != nil {
		t.Fatal(err)
	}
	want := store.PoolUsage{Name: "eu-1", Capacity: capacity, Reservations: 1,
		Reserved: domain.Resources{CPUMillicores: 5000, MemoryBytes: 16e9, DiskBytes: 1e11},
		Free:     domain.Resources{CPUMillicores: 3000, MemoryBytes: 16e9, DiskBytes: 9e11}}
	if usage != want {
		t.Errorf("got usage %+v, want %+v", usage, want)
	}

	// A second live reservation of a in the pool is refused.
	_, err = st.Reserve(ctx, "eu-1", a, domain.Resources{CPUMillicores: 1})
	wantError(t, err, domain.ECONFLICT, "reservations_one_active")

	// Shrinking the pool below what is held is refused; above it is fine.
	err = st.UpsertPool(ctx, "eu-1", domain.Resources{CPUMillicores: 4000, MemoryBytes: 32e9, DiskBytes: 1e12})
	wantError(t, err, domain.EINFEASIBLE, "cpu: short by 1 core")
	if err := st.UpsertPool(ctx, "eu-1", domain.Resources{CPUMillicores: 5000, MemoryBytes: 32e9, DiskBytes: 1e12}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertPool(ctx, "eu-1", capacity); err != nil {
		t.Fatal(err)
	}

	// Released, the capacity is free again and a may reserve anew.
	n, err := st.Release(ctx, a)
	if err != nil || n != 1 {
		t.Fatalf("Release: %d, %v", n, err)
	}
	if n, err := st.Release(ctx, a); err != nil || n != 0 {
		t.Errorf("second Release: %d, %v; want 0, nil", n, err)
	}
	if _, err := st.Reserve(ctx, "eu-1", b, domain.Resources{CPUMillicores: 4000, MemoryBytes: 20e9, DiskBytes: 1e11}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Reserve(ctx, "eu-1", a, domain.Resources{CPUMillicores: 4000}); err != nil {
		t.Fatal(err)
	}
	usage, _ = st.PoolUsage(ctx, "eu-1")
	if usage.Reservations != 2 || usage.Free.CPUMillicores != 0 {
		t.Errorf("got %+v", usage)
	}
	var released int
	st.Pool().QueryRow(ctx, `SELECT count(*) FROM reservations WHERE released_at IS NOT NULL`).Scan(&released)
	if released != 1 {
		t.Errorf("got %d released reservations kept as history, want 1", released)
	}

	_, err = st.PoolUsage(ctx, "nope")
	wantError(t, err, domain.ENOTFOUND, "nope")
	_, err = st.Reserve(ctx, "nope", a, domain.Resources{})
	wantError(t, err, domain.ENOTFOUND, "no such pool")
}

// TestReserveNeverOverCommits races 20 reservations for a pool that fits
// only some of them: exactly those that fit succeed, whatever the order.
func TestReserveNeverOverCommits(t *testing.T) {
	t.Parallel()
	st, ctx := setup(t)
	capacity := domain.Resources{CPUMillicores: 10_000, MemoryBytes: 64 << 30, DiskBytes: 1 << 40}
	if err := st.UpsertPool(ctx, "race", capacity); err != nil {
		t.Fatal(err)
	}
	ask := domain.Resources{CPUMillicores: 1500, MemoryBytes: 4 << 30, DiskBytes: 10 << 30}
	const workers = 20
	const fits = 6 // 6 x 1500m = 9000m of 10000m; a seventh would need 10500m
	ids := make([]string, workers)
	for i := range ids {
		ids[i] = newComposition(t, st, newFixture())
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			<-start
			_, errs[i] = st.Reserve(ctx, "race", ids[i], ask)
		})
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch domain.ErrorCode(err) {
		case "":
			ok++
		case domain.EINFEASIBLE:
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != fits {
		t.Errorf("%d reservations succeeded, want exactly %d", ok, fits)
	}
	usage, err := st.PoolUsage(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if usage.Reserved.CPUMillicores > capacity.CPUMillicores || usage.Reserved.MemoryBytes > capacity.MemoryBytes ||
		usage.Reserved.DiskBytes > capacity.DiskBytes || usage.Reservations != ok ||
		usage.Reserved.CPUMillicores != int64(ok)*ask.CPUMillicores {
		t.Errorf("pool over-committed or miscounted: %+v", usage)
	}
}
