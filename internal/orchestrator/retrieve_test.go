package orchestrator_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapcompose/snapcompose/internal/agent"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/orchestrator"
)

// sourceError is an error a source marks as passing or not, the way the live
// source does, without the orchestrator knowing the source's package.
type sourceError struct {
	err       *domain.Error
	temporary bool
}

func (e *sourceError) Error() string   { return e.err.Error() }
func (e *sourceError) Unwrap() error   { return e.err }
func (e *sourceError) Temporary() bool { return e.temporary }

// scriptedSource answers each source by its script: the errors to return on
// successive attempts, then a snapshot. It counts attempts per source.
type scriptedSource struct {
	mu       sync.Mutex
	script   map[string][]error // by source id; a nil entry means "block until the context ends"
	attempts map[string]*atomic.Int32
}

var errBlock = errors.New("block")

func (s *scriptedSource) Retrieve(ctx context.Context, src domain.Source) (*domain.Snapshot, error) {
	s.mu.Lock()
	n := s.attempts[src.ID]
	if n == nil {
		n = new(atomic.Int32)
		s.attempts[src.ID] = n
	}
	i := int(n.Add(1)) - 1
	steps := s.script[src.ID]
	s.mu.Unlock()
	if i < len(steps) {
		if errors.Is(steps[i], errBlock) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, steps[i]
	}
	return &domain.Snapshot{Source: src, Services: []domain.Service{svc("svc-"+src.ID, "img:"+src.ID)}}, nil
}

func (s *scriptedSource) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.attempts[id]; n != nil {
		return int(n.Load())
	}
	return 0
}

func transientErr(msg string) error {
	return &sourceError{err: domain.Errorf(domain.EUNAVAILABLE, "%s", msg), temporary: true}
}

func permanentErr(msg string) error {
	return &sourceError{err: domain.Errorf(domain.EUNAVAILABLE, "%s", msg), temporary: false}
}

// setupRetrieval returns an orchestrator over a scripted source with the
// given policy, and a manifest naming one source per script entry.
func setupRetrieval(t *testing.T, timeout time.Duration, attempts int, backoff time.Duration, ids []string, script map[string][]error) (*orchestrator.Orchestrator, *domain.Manifest, *scriptedSource) {
	t.Helper()
	src := &scriptedSource{script: script, attempts: map[string]*atomic.Int32{}}
	m := &domain.Manifest{Name: t.Name(), ConflictResolution: domain.FirstWin,
		ResourceLimits: domain.Resources{CPUMillicores: 64000, MemoryBytes: 256 << 30, DiskBytes: 1e13}}
	for i, id := range ids {
		m.Sources = append(m.Sources, domain.Source{Type: domain.TemplateSource, ID: id, Index: i})
	}
	r, err := agent.New(domain.FirstWin)
	if err != nil {
		t.Fatal(err)
	}
	o := orchestrator.New().WithSource(domain.TemplateSource, src).WithResolver(r).WithRetrieval(timeout, attempts, backoff)
	return o, m, src
}

func TestRetrievalRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		script       []error
		attempts     int
		wantAttempts int
		wantCode     string   // "" for success
		wantErr      []string // fragments
	}{
		{"transient failures are retried until one succeeds", []error{transientErr("connection refused"), transientErr("HTTP 503")}, 3, 3, "", nil},
		{"transient failures stop at the attempt limit", []error{transientErr("a"), transientErr("b"), transientErr("connection refused"), nil}, 3, 3,
			domain.EUNAVAILABLE, []string{"template:flaky", "(3 attempts)", "connection refused"}},
		{"one attempt means no retry", []error{transientErr("connection refused")}, 1, 1, domain.EUNAVAILABLE, []string{"template:flaky", "connection refused"}},
		{"a refusal is not retried", []error{permanentErr("the agent refused the token (HTTP 401)")}, 3, 1,
			domain.EUNAVAILABLE, []string{"template:flaky", "refused the token"}},
		{"unmarked unavailability is not retried", []error{domain.Errorf(domain.EUNAVAILABLE, "catalog unreadable")}, 3, 1,
			domain.EUNAVAILABLE, []string{"catalog unreadable"}},
		{"not found is not retried", []error{domain.Errorf(domain.ENOTFOUND, "no such template")}, 3, 1, domain.ENOTFOUND, []string{"template:flaky"}},
		{"a temporary error of another code is not retried", []error{&sourceError{err: domain.Errorf(domain.EINVALID, "bad"), temporary: true}}, 3, 1,
			domain.EINVALID, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, m, src := setupRetrieval(t, 5*time.Second, tt.attempts, time.Millisecond, []string{"flaky"}, map[string][]error{"flaky": tt.script})
			p, err := o.Plan(context.Background(), m)
			if got := src.count("flaky"); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("Plan: %v", err)
				}
				service(t, p, "svc-flaky")
				return
			}
			if code := domain.ErrorCode(err); code != tt.wantCode {
				t.Fatalf("code = %q (%v), want %s", code, err, tt.wantCode)
			}
			if p != nil {
				t.Errorf("a plan came back with a failed retrieval")
			}
			for _, frag := range tt.wantErr {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error does not mention %q: %v", frag, err)
				}
			}
		})
	}
}

func TestRetrievalBacksOff(t *testing.T) {
	t.Parallel()
	const base = 40 * time.Millisecond
	o, m, src := setupRetrieval(t, 5*time.Second, 3, base, []string{"flaky"},
		map[string][]error{"flaky": {transientErr("x"), transientErr("y")}})
	start := time.Now()
	if _, err := o.Plan(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	// Waits of base and 2*base, each jittered down by at most half.
	if elapsed, least := time.Since(start), base/2+base; elapsed < least {
		t.Errorf("three attempts took %s, want at least %s of backoff", elapsed, least)
	}
	if got := src.count("flaky"); got != 3 {
		t.Errorf("attempts = %d, want 3", got)
	}
}

func TestRetrievalTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		script       []error
		timeout      time.Duration
		backoff      time.Duration
		wantAttempts int
		wantErr      []string
	}{
		{"a source that never answers is cut off", []error{errBlock}, 50 * time.Millisecond, time.Millisecond, 1,
			[]string{"template:slow", "no answer within 50ms"}},
		{"a backoff past the deadline is not waited out", []error{transientErr("connection refused"), nil}, 100 * time.Millisecond, time.Hour, 1,
			[]string{"template:slow", "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o, m, src := setupRetrieval(t, tt.timeout, 3, tt.backoff, []string{"slow"}, map[string][]error{"slow": tt.script})
			start := time.Now()
			_, err := o.Plan(context.Background(), m)
			if elapsed := time.Since(start); elapsed > tt.timeout+2*time.Second {
				t.Errorf("Plan took %s with a timeout of %s", elapsed, tt.timeout)
			}
			if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE {
				t.Fatalf("code = %q (%v), want %s", code, err, domain.EUNAVAILABLE)
			}
			for _, frag := range tt.wantErr {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error does not mention %q: %v", frag, err)
				}
			}
			if got := src.count("slow"); got != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", got, tt.wantAttempts)
			}
		})
	}
}

// TestRetrievalIsConcurrentAndReportsEveryFailure: slow sources are fetched
// at once, and every failing source is named.
func TestRetrievalIsConcurrentAndReportsEveryFailure(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	o, m, _ := setupRetrieval(t, timeout, 2, time.Millisecond, []string{"ok", "slow1", "slow2", "down"}, map[string][]error{
		"slow1": {errBlock, errBlock},
		"slow2": {errBlock, errBlock},
		"down":  {transientErr("connection refused"), transientErr("connection refused")},
	})
	start := time.Now()
	_, err := o.Plan(context.Background(), m)
	if elapsed := time.Since(start); elapsed > 2*timeout+time.Second {
		t.Errorf("Plan took %s: sources were not fetched concurrently", elapsed)
	}
	for _, frag := range []string{"template:slow1", "template:slow2", "template:down (2 attempts): connection refused"} {
		if err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("error does not mention %q: %v", frag, err)
		}
	}
	if strings.Contains(err.Error(), "template:ok") {
		t.Errorf("error names a source that succeeded: %v", err)
	}
}

func TestRetrievalStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	o, m, _ := setupRetrieval(t, time.Hour, 3, time.Hour, []string{"slow"}, map[string][]error{"slow": {errBlock}})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	_, err := o.Plan(ctx, m)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Plan took %s after its context was cancelled", elapsed)
	}
}
