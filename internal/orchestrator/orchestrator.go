// Package orchestrator runs the compose workflow: retrieve every source's
// snapshot, settle the conflicts among them with the manifest's strategy and
// build the plan. It sees sources and resolvers only through the interfaces
// in package domain; cmd/ wires the concrete ones in.
package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/snapcompose/snapcompose/internal/composer"
	"github.com/snapcompose/snapcompose/internal/domain"
	"github.com/snapcompose/snapcompose/internal/negotiate"
)

// maxRounds bounds the rounds of one kind of conflict: each round settles
// at least one claimant's conflict for good, so a few suffice.
const maxRounds = 16

// maxConcurrentRetrievals bounds how many sources are fetched at once.
const maxConcurrentRetrievals = 8

// Retrieval defaults: see WithRetrieval.
const (
	DefaultRetrievalTimeout  = 60 * time.Second
	DefaultRetrievalAttempts = 3
	DefaultRetrievalBackoff  = 200 * time.Millisecond
)

// Orchestrator composes environments.
type Orchestrator struct {
	sources   map[domain.SourceType]domain.SnapshotSource
	resolvers map[domain.Strategy]domain.Resolver
	retrieval retrieval
	observe   func(method string, d time.Duration)
}

// retrieval is how sources are fetched.
type retrieval struct {
	timeout  time.Duration // for one source, all attempts together
	attempts int           // at most, for failures that may pass
	backoff  time.Duration // before the second attempt; doubled before each further one
}

// New returns an orchestrator with no sources or resolvers; add them with
// WithSource and WithResolver.
func New() *Orchestrator {
	return &Orchestrator{
		sources:   map[domain.SourceType]domain.SnapshotSource{},
		resolvers: map[domain.Strategy]domain.Resolver{},
		retrieval: retrieval{DefaultRetrievalTimeout, DefaultRetrievalAttempts, DefaultRetrievalBackoff},
	}
}

// WithRetrieval sets how sources are fetched. timeout bounds everything
// spent on one source, retries included (default 60s). A failure that may
// pass — an EUNAVAILABLE error whose source marks it Temporary, such as an
// unreachable or slow agent — is tried up to attempts times in all (default
// 3), waiting backoff before the second attempt (default 200ms) and twice as
// long before each further one, each wait jittered down by up to half so
// that many compositions do not retry in step. A value of zero or less keeps
// its default.
func (o *Orchestrator) WithRetrieval(timeout time.Duration, attempts int, backoff time.Duration) *Orchestrator {
	if timeout > 0 {
		o.retrieval.timeout = timeout
	}
	if attempts > 0 {
		o.retrieval.attempts = attempts
	}
	if backoff > 0 {
		o.retrieval.backoff = backoff
	}
	return o
}

// WithAllocationObserver makes f hear how long each run of the allocator
// took, and its method.
func (o *Orchestrator) WithAllocationObserver(f func(method string, d time.Duration)) *Orchestrator {
	o.observe = f
	return o
}

// WithSource makes src retrieve sources of type t.
func (o *Orchestrator) WithSource(t domain.SourceType, src domain.SnapshotSource) *Orchestrator {
	o.sources[t] = src
	return o
}

// WithResolver makes r settle the conflicts of manifests that name its strategy.
func (o *Orchestrator) WithResolver(r domain.Resolver) *Orchestrator {
	o.resolvers[r.Strategy()] = r
	return o
}

// Plan composes m and returns its plan. Resources are allocated within the
// limits by package negotiate, which asks sources that implement
// domain.Negotiator for concessions when the minimums do not fit. When the
// composition cannot be fitted it returns the plan together with an
// EINFEASIBLE error, so the caller can show what does not fit. Retrieval errors keep their codes (ENOTFOUND, EINVALID,
// EUNAVAILABLE); a strategy with no resolver is EUNAVAILABLE.
func (o *Orchestrator) Plan(ctx context.Context, m *domain.Manifest) (*domain.Plan, error) {
	rec, err := o.Compose(ctx, m)
	if rec == nil {
		return nil, err
	}
	return rec.Plan, err
}

// Compose composes m like Plan and returns everything the composition
// decided, for the history and for instantiation: the plan, the snapshots
// as retrieved, and every decision with the resolver's choice, in the order
// they were settled. Features are left to the caller, who knows the
// history they are extracted against. Like Plan, it returns the record
// together with an EINFEASIBLE error when the composition cannot be fitted,
// and nil with any other error.
func (o *Orchestrator) Compose(ctx context.Context, m *domain.Manifest) (*domain.PlanRecord, error) {
	resolver, ok := o.resolvers[m.ConflictResolution]
	if !ok {
		return nil, domain.Errorf(domain.EUNAVAILABLE, "conflict_resolution %s is not available in this process; available: %s", m.ConflictResolution, o.available())
	}
	for i, s := range m.Sources {
		if o.sources[s.Type] == nil {
			return nil, domain.Errorf(domain.EINVALID, "/sources/%d: no %s sources can be retrieved here (%s)", i, s.Type, s.Ref())
		}
	}
	snaps, err := o.retrieve(ctx, m)
	if err != nil {
		return nil, err
	}
	comp, err := composer.New(m, snaps)
	if err != nil {
		return nil, err
	}
	var weigh negotiate.Weigher
	if v, ok := resolver.(Valuer); ok {
		resolver, weigh = v.ForPlan()
	}
	rec := &domain.PlanRecord{Snapshots: snaps}
	for _, kind := range domain.ClaimKinds {
		// A round settles every conflict of the kind. A choice made moot by
		// an earlier one in the round (its winner was dropped) leaves what
		// still collides to another round.
		for round := 0; ; round++ {
			decisions := comp.Decisions(kind)
			if len(decisions) == 0 {
				break
			}
			if round == maxRounds {
				return nil, fmt.Errorf("%s conflicts still remain after %d rounds (%s, ...)", kind, maxRounds, decisions[0].Conflict.Key)
			}
			choices, err := resolver.Resolve(ctx, m, decisions)
			if err != nil {
				return nil, fmt.Errorf("settling %s conflicts with %s: %w", kind, m.ConflictResolution, err)
			}
			if len(choices) != len(decisions) {
				return nil, fmt.Errorf("%s answered %d of %d %s conflicts", m.ConflictResolution, len(choices), len(decisions), kind)
			}
			for i, d := range decisions {
				if err := comp.Apply(d, choices[i]); err != nil {
					return nil, fmt.Errorf("settling %s: %w", d.Conflict.Key, err)
				}
			}
			rec.Decisions = append(rec.Decisions, decisions...)
			rec.Choices = append(rec.Choices, choices...)
			if kind.Compute() {
				break // demand over a limit: one round, the allocator does the rest
			}
		}
	}
	plan, err := negotiate.Fit(ctx, comp, m.ResourceLimits, negotiate.Options{Negotiators: o.negotiators(), Weigh: weigh, ObserveAllocation: o.observe})
	if plan == nil {
		return nil, err
	}
	rec.Plan = plan
	return rec, err
}

// Valuer is a resolver that also values services for the allocator from
// what it learned settling a plan's conflicts (the AI_AGENT strategy):
// ForPlan returns the resolver for one plan and the weigher to allocate
// that plan with.
type Valuer interface {
	domain.Resolver
	ForPlan() (domain.Resolver, negotiate.Weigher)
}

// negotiators returns the sources that can concede, by type.
func (o *Orchestrator) negotiators() map[domain.SourceType]domain.Negotiator {
	out := map[domain.SourceType]domain.Negotiator{}
	for t, src := range o.sources {
		if n, ok := src.(domain.Negotiator); ok {
			out[t] = n
		}
	}
	return out
}

func (o *Orchestrator) available() string {
	var names []string
	for _, s := range domain.Strategies {
		if _, ok := o.resolvers[s]; ok {
			names = append(names, string(s))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprint(names)
}

// retrieve fetches every source's snapshot concurrently, each within the
// retrieval timeout and retrying failures that may pass. It reports every
// source that failed, not just the first, each named by its ref; when any
// fails, no snapshot is kept.
func (o *Orchestrator) retrieve(ctx context.Context, m *domain.Manifest) ([]*domain.Snapshot, error) {
	snaps := make([]*domain.Snapshot, len(m.Sources))
	errs := make([]error, len(m.Sources))
	sem := make(chan struct{}, maxConcurrentRetrievals)
	var wg sync.WaitGroup
	for i, src := range m.Sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			snaps[i], errs[i] = o.retrieveOne(ctx, src)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return snaps, nil
}

// retrieveOne fetches one source's snapshot under the retrieval policy.
func (o *Orchestrator) retrieveOne(parent context.Context, src domain.Source) (*domain.Snapshot, error) {
	policy := o.retrieval
	ctx, cancel := context.WithTimeout(parent, policy.timeout)
	defer cancel()
	source := o.sources[src.Type]
	for attempt := 1; ; attempt++ {
		snap, err := source.Retrieve(ctx, src)
		if err == nil {
			return snap, nil
		}
		tries := ""
		if attempt > 1 {
			tries = fmt.Sprintf(" (%d attempts)", attempt)
		}
		switch {
		case parent.Err() != nil:
			return nil, fmt.Errorf("retrieving %s: %w", src.Ref(), err)
		case ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) && domain.ErrorCode(err) == domain.EINTERNAL:
			// The source gave up because its time ran out, and said so only
			// with the context's error.
			return nil, domain.Errorf(domain.EUNAVAILABLE, "retrieving %s%s: no answer within %s", src.Ref(), tries, policy.timeout)
		case !transient(err) || attempt >= policy.attempts || ctx.Err() != nil:
			return nil, fmt.Errorf("retrieving %s%s: %w", src.Ref(), tries, err)
		}
		wait := backoff(policy.backoff, attempt)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			// The next attempt could not start in time: the last error is
			// the more useful one to report.
			return nil, fmt.Errorf("retrieving %s%s: %w", src.Ref(), tries, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			if parent.Err() != nil {
				return nil, fmt.Errorf("retrieving %s: %w", src.Ref(), parent.Err())
			}
			return nil, fmt.Errorf("retrieving %s%s: %w", src.Ref(), tries, err)
		}
	}
}

// transient reports whether err may pass on another attempt: an
// EUNAVAILABLE error that its source marks Temporary. Sources mark their
// errors so, rather than the orchestrator guessing from messages; anything
// unmarked (a refused token, a missing template) would fail the same way
// again.
func transient(err error) bool {
	var t interface{ Temporary() bool }
	return domain.ErrorCode(err) == domain.EUNAVAILABLE && errors.As(err, &t) && t.Temporary()
}

// backoff returns the wait before attempt+1: base doubled for each attempt
// after the first, less a random part of up to half of it.
func backoff(base time.Duration, attempt int) time.Duration {
	d := base << min(attempt-1, 20)
	if d <= 0 {
		return base
	}
	half := d / 2
	return d - time.Duration(rand.Int64N(int64(half)+1))
}
