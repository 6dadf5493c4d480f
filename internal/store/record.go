package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/snapcompose/snapcompose/internal/domain"
)

// RecordPlan keeps everything composition id decided, in one transaction:
// the snapshot of every source, the claims analysed, each conflict with the
// resolution carried out, every candidate with its features, score and
// whether it was chosen, each service's allocation, the dropped services, and
// the plan itself. The composition's status is left alone.
//
// It returns EINVALID when r does not hang together (the message says how),
// ENOTFOUND when the composition or r.ModelVersion does not exist, ECONFLICT
// when the composition's plan is already recorded, and EINVALID, ECONFLICT or
// ENOTFOUND naming the constraint when a row breaks one.
func (s *Store) RecordPlan(ctx context.Context, id string, r *domain.PlanRecord) error {
	op := "recording the plan of composition " + id
	if err := checkID(id); err != nil {
		return err
	}
	if err := checkPlanRecord(r); err != nil {
		return domain.Errorf(domain.EINVALID, "%s: %v", op, err)
	}
	planJSON, err := json.Marshal(r.Plan)
	if err != nil {
		return fmt.Errorf("%s: encoding the plan: %w", op, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		var recorded bool
		err := tx.QueryRow(ctx, `SELECT plan IS NOT NULL FROM compositions WHERE id = $1 FOR UPDATE`, id).Scan(&recorded)
		if errors.Is(err, pgx.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "%s: no such composition", op)
		}
		if err != nil {
			return err
		}
		if recorded {
			return domain.Errorf(domain.ECONFLICT, "%s: its plan is already recorded", op)
		}
		var modelID *int64
		if r.ModelVersion != "" {
			modelID = new(int64)
			err := tx.QueryRow(ctx, `SELECT id FROM model_versions WHERE version = $1`, r.ModelVersion).Scan(modelID)
			if errors.Is(err, pgx.ErrNoRows) {
				return domain.Errorf(domain.ENOTFOUND, "%s: model version %q does not exist", op, r.ModelVersion)
			}
			if err != nil {
				return err
			}
		}
		if err := recordSnapshots(ctx, tx, id, r); err != nil {
			return err
		}
		if err := copyRows(ctx, tx, "claims", []string{"composition_id", "kind", "key", "source_ref", "owner", "content_digest"},
			len(r.Claims), func(i int) []any {
				c := r.Claims[i]
				return []any{id, string(c.Kind), c.Key, string(c.Source), c.Owner, c.Content}
			}); err != nil {
			return err
		}
		if err := recordConflicts(ctx, tx, id, r); err != nil {
			return err
		}
		p := r.Plan
		if err := copyRows(ctx, tx, "allocations", []string{"composition_id", "service", "source_ref",
			"cpu_millicores", "memory_bytes", "disk_bytes",
			"requested_cpu_millicores", "requested_memory_bytes", "requested_disk_bytes",
			"minimum_cpu_millicores", "minimum_memory_bytes", "minimum_disk_bytes", "optional"},
			len(p.Services), func(i int) []any {
				svc := p.Services[i]
				a, q, m := svc.Allocation, svc.Requested, svc.Minimum
				return []any{id, svc.Name, string(svc.Source), a.CPUMillicores, a.MemoryBytes, a.DiskBytes,
					q.CPUMillicores, q.MemoryBytes, q.DiskBytes, m.CPUMillicores, m.MemoryBytes, m.DiskBytes, svc.Optional}
			}); err != nil {
			return err
		}
		if err := copyRows(ctx, tx, "dropped_services", []string{"composition_id", "ordinal", "service", "source_ref", "reason"},
			len(p.Dropped), func(i int) []any {
				d := p.Dropped[i]
				return []any{id, i, d.Name, string(d.Source), d.Reason}
			}); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE compositions SET plan = $2, feasible = $3, model_version_id = $4, updated_at = now() WHERE id = $1`,
			id, json.RawMessage(planJSON), p.Feasible, modelID)
		return err
	})
	if err != nil {
		return constraintError(op, err)
	}
	return nil
}

// checkPlanRecord checks that the parts of r belong together.
func checkPlanRecord(r *domain.PlanRecord) error {
	if r == nil || r.Plan == nil {
		return errors.New("no plan")
	}
	n := len(r.Plan.Conflicts)
	if len(r.Decisions) != n || len(r.Choices) != n {
		return fmt.Errorf("the plan has %d conflicts but there are %d decisions and %d choices", n, len(r.Decisions), len(r.Choices))
	}
	if r.CapturedAt != nil && len(r.CapturedAt) != len(r.Snapshots) {
		return fmt.Errorf("%d capture times for %d snapshots", len(r.CapturedAt), len(r.Snapshots))
	}
	if r.Features != nil && len(r.Features) != n {
		return fmt.Errorf("features for %d decisions, want %d", len(r.Features), n)
	}
	for i, d := range r.Decisions {
		cf, ch := r.Plan.Conflicts[i], r.Choices[i]
		if cf.Resolution == nil {
			return fmt.Errorf("conflict %d (%s) has no resolution", i, cf.Key)
		}
		if d.Conflict.Kind != cf.Kind || d.Conflict.Key != cf.Key {
			return fmt.Errorf("decision %d is on %s but conflict %d of the plan on %s", i, d.Conflict.Key, i, cf.Key)
		}
		if ch.Candidate < 0 || ch.Candidate >= len(d.Candidates) {
			return fmt.Errorf("choice %d picks candidate %d of %d for %s", i, ch.Candidate, len(d.Candidates), cf.Key)
		}
		if ch.Scores != nil && len(ch.Scores) != len(d.Candidates) {
			return fmt.Errorf("choice %d scores %d of %d candidates for %s", i, len(ch.Scores), len(d.Candidates), cf.Key)
		}
		for j, v := range ch.Scores {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("choice %d scores candidate %d of %s %v: a score is a finite number (candidates_score_check)", i, j, cf.Key, v)
			}
		}
		if r.Features != nil && r.Features[i] != nil {
			if len(r.Features[i]) != len(d.Candidates) {
				return fmt.Errorf("features for %d of %d candidates for %s", len(r.Features[i]), len(d.Candidates), cf.Key)
			}
			if r.FeatureSchema == "" {
				return errors.New("features without a feature schema")
			}
		}
	}
	return nil
}

func recordSnapshots(ctx context.Context, tx pgx.Tx, id string, r *domain.PlanRecord) error {
	rows, err := tx.Query(ctx, `SELECT ref FROM composition_sources WHERE composition_id = $1 ORDER BY position`, id)
	if err != nil {
		return err
	}
	refs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(r.Snapshots) != len(refs) {
		return domain.Errorf(domain.EINVALID, "%d snapshots for the %d sources of composition %s", len(r.Snapshots), len(refs), id)
	}
	var templateIDs []string
	for i, snap := range r.Snapshots {
		if snap == nil || string(snap.Source.Ref()) != refs[i] {
			return domain.Errorf(domain.EINVALID, "snapshot %d is not of source %s", i, refs[i])
		}
		if snap.Source.Type == domain.TemplateSource {
			templateIDs = append(templateIDs, snap.Source.ID)
		}
	}
	// A template snapshot refers to the version the catalog holds now.
	versions := map[string]int64{}
	if len(templateIDs) > 0 {
		rows, err := tx.Query(ctx, `
			SELECT t.id, v.id FROM templates t
			JOIN template_versions v ON v.template_id = t.id AND v.version = t.current_version
			WHERE t.id = ANY($1)`, templateIDs)
		if err != nil {
			return err
		}
		var tid string
		var vid int64
		if _, err := pgx.ForEachRow(rows, []any{&tid, &vid}, func() error { versions[tid] = vid; return nil }); err != nil {
			return err
		}
	}
	now := time.Now()
	return copyRows(ctx, tx, "snapshots", []string{"composition_id", "position", "digest", "body", "template_version_id", "host", "path", "captured_at"},
		len(r.Snapshots), func(i int) []any {
			snap := r.Snapshots[i]
			body := snapshotBody(snap)
			at := now
			if r.CapturedAt != nil && !r.CapturedAt[i].IsZero() {
				at = r.CapturedAt[i]
			}
			var version *int64
			var host, path *string
			if snap.Source.Type == domain.LiveSource {
				host, path = &snap.Source.Host, &snap.Source.Path
			} else if v, ok := versions[snap.Source.ID]; ok {
				version = &v
			}
			return []any{id, i, domain.Digest(body), json.RawMessage(body), version, host, path, at}
		})
}

func recordConflicts(ctx context.Context, tx pgx.Tx, id string, r *domain.PlanRecord) error {
	conflicts := r.Plan.Conflicts
	var encodeErr error
	err := copyRows(ctx, tx, "conflicts", []string{"composition_id", "ordinal", "kind", "key", "claimants", "action", "winner", "detail", "score", "ambiguous", "changes"},
		len(conflicts), func(i int) []any {
			cf := conflicts[i]
			res := cf.Resolution
			claimants, err1 := json.Marshal(cf.Claimants)
			changes, err2 := json.Marshal(nonNilChanges(res.Changes))
			if err := errors.Join(err1, err2); err != nil {
				encodeErr = err
			}
			return []any{id, i, string(cf.Kind), cf.Key, json.RawMessage(claimants), string(res.Action), refText(res.Winner),
				res.Detail, res.Score, res.Ambiguous, json.RawMessage(changes)}
		})
	if err := errors.Join(encodeErr, err); err != nil {
		return err
	}
	ids := make([]int64, len(conflicts))
	rows, err := tx.Query(ctx, `SELECT id, ordinal FROM conflicts WHERE composition_id = $1`, id)
	if err != nil {
		return err
	}
	var cid int64
	var ordinal int
	if _, err := pgx.ForEachRow(rows, []any{&cid, &ordinal}, func() error { ids[ordinal] = cid; return nil }); err != nil {
		return err
	}
	type ref struct{ decision, candidate int }
	var cands []ref
	for i, d := range r.Decisions {
		for j := range d.Candidates {
			cands = append(cands, ref{i, j})
		}
	}
	return copyRows(ctx, tx, "candidates", []string{"conflict_id", "ordinal", "action", "winner", "detail", "rejected", "features", "feature_schema", "score", "chosen"},
		len(cands), func(k int) []any {
			i, j := cands[k].decision, cands[k].candidate
			c, ch := r.Decisions[i].Candidates[j], r.Choices[i]
			// AI_AGENT does not consider a candidate that overfills the
			// limits: for it, that is a rejection (the simulator's
			// exploring policy may still have chosen one). What was not
			// scored has no score.
			why := c.Rejected
			if why == "" && c.Overfills != "" && j != ch.Candidate && r.Plan != nil && r.Plan.Strategy == domain.AIAgent {
				why = c.Overfills
			}
			var rejected, schema *string
			if why != "" {
				rejected = &why
			}
			var features []float32
			if r.Features != nil && r.Features[i] != nil {
				features, schema = r.Features[i][j], &r.FeatureSchema
			}
			var score *float64
			if ch.Scores != nil && why == "" {
				score = &ch.Scores[j]
			}
			return []any{ids[i], j, string(c.Resolution.Action), refText(c.Resolution.Winner), c.Resolution.Detail,
				rejected, features, schema, score, j == ch.Candidate}
		})
}

// copyRows copies n rows, made by row(i), into table with COPY.
func copyRows(ctx context.Context, tx pgx.Tx, table string, columns []string, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	i := -1
	_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, columns, pgx.CopyFromFunc(func() ([]any, error) {
		i++
		if i == n {
			return nil, nil
		}
		return row(i), nil
	}))
	if err != nil {
		return fmt.Errorf("copying %s: %w", table, err)
	}
	return nil
}

func refText(r *domain.SourceRef) *string {
	if r == nil {
		return nil
	}
	s := string(*r)
	return &s
}

func nonNilChanges(c []domain.Change) []domain.Change {
	if c == nil {
		return []domain.Change{}
	}
	return c
}

// snapshotDoc is the stored form of a snapshot: snake_case like every JSON
// snapcompose writes, and secret variables only as digests.
type snapshotDoc struct {
	Source      sourceDoc    `json:"source"`
	Description string       `json:"description"`
	Tags        []string     `json:"tags"`
	Services    []serviceDoc `json:"services"`
	Env         []envDoc     `json:"env"`
	Files       []fileDoc    `json:"files"`
	Volumes     []volumeDoc  `json:"volumes"`
}

type sourceDoc struct {
	Ref      domain.SourceRef  `json:"ref"`
	Type     domain.SourceType `json:"type"`
	ID       string            `json:"id,omitempty"`
	Host     string            `json:"host,omitempty"`
	Path     string            `json:"path,omitempty"`
	Priority int               `json:"priority"`
	Tags     []string          `json:"tags"`
}

type serviceDoc struct {
	Name        string           `json:"name"`
	Image       string           `json:"image"`
	Ports       []domain.Port    `json:"ports"`
	DependsOn   []string         `json:"depends_on"`
	Volumes     []string         `json:"volumes"`
	Requested   domain.Resources `json:"requested"`
	Minimum     domain.Resources `json:"minimum"`
	Optional    bool             `json:"optional"`
	Runtime     string           `json:"runtime"`
	Digest      string           `json:"digest"`
	RenamedFrom string           `json:"renamed_from,omitempty"`
}

type envDoc struct {
	Name   string  `json:"name"`
	Value  *string `json:"value,omitempty"`
	Digest string  `json:"digest,omitempty"`
}

type fileDoc struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	Mode   uint32 `json:"mode"`
}

type volumeDoc struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// snapshotBody encodes snap as it is stored. The encoding is deterministic,
// so equal snapshots get equal digests.
func snapshotBody(snap *domain.Snapshot) []byte {
	src := snap.Source
	doc := snapshotDoc{
		Source:      sourceDoc{Ref: src.Ref(), Type: src.Type, ID: src.ID, Host: src.Host, Path: src.Path, Priority: src.Priority, Tags: nonNilStrings(src.Tags)},
		Description: snap.Description,
		Tags:        nonNilStrings(snap.Tags),
		Services:    make([]serviceDoc, len(snap.Services)),
		Env:         make([]envDoc, len(snap.Env)),
		Files:       make([]fileDoc, len(snap.Files)),
		Volumes:     make([]volumeDoc, len(snap.Volumes)),
	}
	for i, svc := range snap.Services {
		doc.Services[i] = serviceDoc{Name: svc.Name, Image: svc.Image, Ports: nonNilPorts(svc.Ports),
			DependsOn: nonNilStrings(svc.DependsOn), Volumes: nonNilStrings(svc.Volumes),
			Requested: svc.Requested, Minimum: svc.Minimum, Optional: svc.Optional,
			Runtime: svc.Runtime, Digest: svc.Digest, RenamedFrom: svc.RenamedFrom}
	}
	for i, e := range snap.Env {
		if e.Secret() {
			doc.Env[i] = envDoc{Name: e.Name, Digest: domain.Digest([]byte(e.Value))}
		} else {
			v := e.Value
			doc.Env[i] = envDoc{Name: e.Name, Value: &v}
		}
	}
	for i, f := range snap.Files {
		doc.Files[i] = fileDoc(f)
	}
	for i, v := range snap.Volumes {
		doc.Volumes[i] = volumeDoc{Name: v.Name, Digest: v.Digest}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		panic(err) // plain strings and numbers only; cannot fail
	}
	return b
}

func nonNilPorts(p []domain.Port) []domain.Port {
	if p == nil {
		return []domain.Port{}
	}
	return p
}
