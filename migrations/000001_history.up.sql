-- snapcompose history: everything a composition decided and observed, kept so
-- analysts can query it and the agent's model can be retrained from it.
--
-- Conventions:
--   * timestamptz everywhere; analyst views bucket days in UTC.
--   * digests are "sha256:<64 hex>", as domain.Digest writes them.
--   * A composition owns its details (sources, snapshots, claims, conflicts,
--     candidates, allocations, drops, outcomes, reservations): they go
--     ON DELETE CASCADE with it, so purging old history is one DELETE.
--   * Things history points at but does not own (template versions, model
--     versions, capacity pools) are never deleted from under it: RESTRICT, or
--     SET NULL where the row keeps its own copy of what it needs.

-- Templates --------------------------------------------------------------

CREATE TABLE templates (
    id              text PRIMARY KEY
                    CONSTRAINT templates_id_check CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    description     text NOT NULL DEFAULT '',
    tags            text[] NOT NULL DEFAULT '{}'
                    CONSTRAINT templates_tags_check CHECK (array_position(tags, NULL) IS NULL),
    -- The version the catalog holds now. Not simply the highest: a template
    -- reverted to an earlier body gets that earlier version back, since a
    -- body (digest) has exactly one version.
    current_version integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE template_versions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Versions are part of their template.
    template_id text NOT NULL REFERENCES templates (id) ON DELETE CASCADE,
    version     integer NOT NULL CONSTRAINT template_versions_version_check CHECK (version > 0),
    body        text NOT NULL,
    digest      text NOT NULL CONSTRAINT template_versions_digest_check CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT template_versions_version_key UNIQUE (template_id, version),
    CONSTRAINT template_versions_digest_key UNIQUE (template_id, digest)
);

-- Deferred: a new template and its first version are inserted in one
-- transaction, each needing the other.
ALTER TABLE templates ADD CONSTRAINT templates_current_version_fkey
    FOREIGN KEY (id, current_version) REFERENCES template_versions (template_id, version)
    DEFERRABLE INITIALLY DEFERRED;

-- Models and training ------------------------------------------------------

CREATE TABLE model_versions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version        text NOT NULL CONSTRAINT model_versions_version_key UNIQUE
                   CONSTRAINT model_versions_version_check CHECK (version <> ''),
    card           jsonb NOT NULL CONSTRAINT model_versions_card_check CHECK (jsonb_typeof(card) = 'object'),
    metrics        jsonb NOT NULL DEFAULT '{}' CONSTRAINT model_versions_metrics_check CHECK (jsonb_typeof(metrics) = 'object'),
    -- The model itself, so any server process can load the promoted one
    -- without a shared file system. The digest must be the bytes' own.
    onnx           bytea NOT NULL CONSTRAINT model_versions_onnx_check CHECK (octet_length(onnx) > 0),
    onnx_digest    text NOT NULL,
    feature_schema text NOT NULL CONSTRAINT model_versions_feature_schema_check CHECK (feature_schema <> ''),
    created_at     timestamptz NOT NULL DEFAULT now(),
    promoted       boolean NOT NULL DEFAULT false,
    promoted_at    timestamptz,
    CONSTRAINT model_versions_onnx_digest_check CHECK (onnx_digest = 'sha256:' || encode(sha256(onnx), 'hex')),
    CONSTRAINT model_versions_promoted_at_check CHECK (NOT promoted OR promoted_at IS NOT NULL)
);

-- At most one model serves at a time.
CREATE UNIQUE INDEX model_versions_one_promoted ON model_versions (promoted) WHERE promoted;

CREATE TABLE training_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    status           text NOT NULL DEFAULT 'queued'
                     CONSTRAINT training_runs_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    -- The window of history the run trains on.
    data_from        timestamptz,
    data_to          timestamptz,
    rows             bigint CONSTRAINT training_runs_rows_check CHECK (rows >= 0),
    metrics          jsonb NOT NULL DEFAULT '{}' CONSTRAINT training_runs_metrics_check CHECK (jsonb_typeof(metrics) = 'object'),
    progress         real NOT NULL DEFAULT 0 CONSTRAINT training_runs_progress_check CHECK (progress >= 0 AND progress <= 1),
    error            text,
    -- The run's record outlives a model version deleted later.
    model_version_id bigint REFERENCES model_versions (id) ON DELETE SET NULL,
    CONSTRAINT training_runs_data_window_check CHECK (data_from <= data_to),
    CONSTRAINT training_runs_finished_check CHECK ((status IN ('succeeded', 'failed')) = (finished_at IS NOT NULL)),
    CONSTRAINT training_runs_error_check CHECK (status <> 'failed' OR coalesce(error, '') <> '')
);

CREATE INDEX training_runs_created_at_idx ON training_runs (created_at);
CREATE INDEX training_runs_model_version_id_idx ON training_runs (model_version_id);

-- Compositions -------------------------------------------------------------

CREATE TABLE compositions (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name                 text NOT NULL CONSTRAINT compositions_name_check CHECK (name <> ''),
    -- The request as the user sent it.
    manifest             jsonb NOT NULL CONSTRAINT compositions_manifest_check CHECK (jsonb_typeof(manifest) = 'object'),
    strategy             text NOT NULL
                         CONSTRAINT compositions_strategy_check CHECK (strategy IN ('AI_AGENT', 'LAST_WIN', 'FIRST_WIN', 'PRIORITY')),
    -- The manifest's resource_limits, as columns so training and analysts
    -- need not dig them out of the manifest.
    limit_cpu_millicores bigint NOT NULL CONSTRAINT compositions_limit_cpu_check CHECK (limit_cpu_millicores >= 0),
    limit_memory_bytes   bigint NOT NULL CONSTRAINT compositions_limit_memory_check CHECK (limit_memory_bytes >= 0),
    limit_disk_bytes     bigint NOT NULL CONSTRAINT compositions_limit_disk_check CHECK (limit_disk_bytes >= 0),
    status               text NOT NULL DEFAULT 'pending'
                         CONSTRAINT compositions_status_check CHECK (status IN ('pending', 'running', 'planned', 'provisioning',
                             'provisioned', 'instantiated', 'succeeded', 'failed', 'cancelled')),
    plan                 jsonb CONSTRAINT compositions_plan_check CHECK (jsonb_typeof(plan) = 'object'),
    error                text,
    -- Stage name -> milliseconds spent in it.
    timings              jsonb NOT NULL DEFAULT '{}' CONSTRAINT compositions_timings_check CHECK (jsonb_typeof(timings) = 'object'),
    feasible             boolean,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    finished_at          timestamptz,
    -- A model version that decided compositions is history: keep it.
    model_version_id     bigint REFERENCES model_versions (id) ON DELETE RESTRICT,
    CONSTRAINT compositions_finished_check CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT compositions_finished_at_check CHECK (finished_at >= created_at),
    -- A failure nobody can explain teaches nothing.
    CONSTRAINT compositions_error_check CHECK (status <> 'failed' OR coalesce(error, '') <> '')
);

-- Listing pages newest first by (created_at, id); filters by strategy and
-- status come with the same order.
CREATE INDEX compositions_created_at_idx ON compositions (created_at, id);
CREATE INDEX compositions_strategy_idx ON compositions (strategy, created_at, id);
CREATE INDEX compositions_status_idx ON compositions (status, created_at, id);
CREATE INDEX compositions_model_version_id_idx ON compositions (model_version_id) WHERE model_version_id IS NOT NULL;

-- The manifest's sources, recorded with the composition so that even a
-- composition whose retrieval failed counts against its sources.
CREATE TABLE composition_sources (
    composition_id uuid NOT NULL REFERENCES compositions (id) ON DELETE CASCADE,
    position       integer NOT NULL CONSTRAINT composition_sources_position_check CHECK (position >= 0),
    ref            text NOT NULL,
    type           text NOT NULL CONSTRAINT composition_sources_type_check CHECK (type IN ('template', 'live')),
    priority       integer NOT NULL DEFAULT 0,
    tags           text[] NOT NULL DEFAULT '{}'
                   CONSTRAINT composition_sources_tags_check CHECK (array_position(tags, NULL) IS NULL),
    PRIMARY KEY (composition_id, position),
    -- A manifest lists a source once; claims and allocations point at it by ref.
    CONSTRAINT composition_sources_ref_key UNIQUE (composition_id, ref),
    CONSTRAINT composition_sources_ref_check CHECK (
        (type = 'template' AND ref ~ '^template:.+$') OR (type = 'live' AND ref ~ '^live:[^:]+:/.*$'))
);

CREATE INDEX composition_sources_ref_idx ON composition_sources (ref);

-- What each source contributed, as captured. The body is kept whole (secret
-- values only as digests), so a composition can be replayed even after the
-- template changed or the live host moved on.
CREATE TABLE snapshots (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    composition_id      uuid NOT NULL,
    position            integer NOT NULL,
    digest              text NOT NULL CONSTRAINT snapshots_digest_check CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    body                jsonb NOT NULL CONSTRAINT snapshots_body_check CHECK (jsonb_typeof(body) = 'object'),
    -- The template version the catalog held when the plan was recorded;
    -- the body above keeps the content should that version go.
    template_version_id bigint REFERENCES template_versions (id) ON DELETE SET NULL,
    -- Live captures: where from. Freshness is recorded_at - captured_at.
    host                text,
    path                text,
    captured_at         timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshots_source_fkey FOREIGN KEY (composition_id, position)
        REFERENCES composition_sources (composition_id, position) ON DELETE CASCADE,
    CONSTRAINT snapshots_source_key UNIQUE (composition_id, position),
    CONSTRAINT snapshots_live_check CHECK ((host IS NULL) = (path IS NULL)),
    CONSTRAINT snapshots_template_check CHECK (template_version_id IS NULL OR host IS NULL)
);

CREATE INDEX snapshots_digest_idx ON snapshots (digest);
CREATE INDEX snapshots_template_version_id_idx ON snapshots (template_version_id) WHERE template_version_id IS NOT NULL;
CREATE INDEX snapshots_host_idx ON snapshots (host, captured_at) WHERE host IS NOT NULL;

-- Every claim the analysis saw, conflicting or not: the denominators for
-- "how often does this key collide".
CREATE TABLE claims (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    composition_id uuid NOT NULL,
    kind           text NOT NULL
                   CONSTRAINT claims_kind_check CHECK (kind IN ('service', 'port', 'env', 'file', 'volume', 'cpu', 'memory', 'disk')),
    key            text NOT NULL CONSTRAINT claims_key_check CHECK (key <> ''),
    source_ref     text NOT NULL,
    owner          text NOT NULL DEFAULT '',
    -- Equal content never conflicts.
    content_digest text NOT NULL,
    CONSTRAINT claims_source_fkey FOREIGN KEY (composition_id, source_ref)
        REFERENCES composition_sources (composition_id, ref) ON DELETE CASCADE
);

CREATE INDEX claims_composition_idx ON claims (composition_id, kind, key);
CREATE INDEX claims_source_ref_idx ON claims (source_ref);
CREATE INDEX claims_kind_key_idx ON claims (kind, key);

CREATE TABLE conflicts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    composition_id uuid NOT NULL REFERENCES compositions (id) ON DELETE CASCADE,
    -- Position in the order conflicts were settled (the plan's order).
    ordinal        integer NOT NULL CONSTRAINT conflicts_ordinal_check CHECK (ordinal >= 0),
    kind           text NOT NULL
                   CONSTRAINT conflicts_kind_check CHECK (kind IN ('service', 'port', 'env', 'file', 'volume', 'cpu', 'memory', 'disk')),
    key            text NOT NULL CONSTRAINT conflicts_key_check CHECK (key <> ''),
    -- [{source, owner, optional?}], as in the plan.
    claimants      jsonb NOT NULL CONSTRAINT conflicts_claimants_check
                   CHECK (jsonb_typeof(claimants) = 'array' AND jsonb_array_length(claimants) > 0),
    -- The resolution carried out.
    action         text NOT NULL
                   CONSTRAINT conflicts_action_check CHECK (action IN ('keep', 'remap', 'rename', 'share', 'merge', 'drop', 'allocate')),
    winner         text,
    detail         text NOT NULL,
    score          double precision CONSTRAINT conflicts_score_check CHECK (score NOT IN ('NaN', 'Infinity', '-Infinity')),
    ambiguous      boolean NOT NULL DEFAULT false,
    -- The elementary edits the resolution made ([{op, source, ...}]).
    changes        jsonb NOT NULL DEFAULT '[]' CONSTRAINT conflicts_changes_check CHECK (jsonb_typeof(changes) = 'array'),
    CONSTRAINT conflicts_ordinal_key UNIQUE (composition_id, ordinal)
);

CREATE INDEX conflicts_kind_idx ON conflicts (kind, action);
CREATE INDEX conflicts_winner_idx ON conflicts (winner) WHERE winner IS NOT NULL;

-- Every candidate resolution of every conflict, with the features and score
-- the agent saw: the training rows.
CREATE TABLE candidates (
    conflict_id    bigint NOT NULL REFERENCES conflicts (id) ON DELETE CASCADE,
    ordinal        integer NOT NULL CONSTRAINT candidates_ordinal_check CHECK (ordinal >= 0),
    action         text NOT NULL
                   CONSTRAINT candidates_action_check CHECK (action IN ('keep', 'remap', 'rename', 'share', 'merge', 'drop', 'allocate')),
    winner         text,
    detail         text NOT NULL,
    -- Why the candidate could not be chosen, if it could not.
    rejected       text CONSTRAINT candidates_rejected_check CHECK (rejected <> ''),
    features       real[],
    -- Hash of the feature layout: rows of different layouts never train together.
    feature_schema text,
    score          double precision CONSTRAINT candidates_score_check CHECK (score NOT IN ('NaN', 'Infinity', '-Infinity')),
    chosen         boolean NOT NULL DEFAULT false,
    PRIMARY KEY (conflict_id, ordinal),
    CONSTRAINT candidates_features_check CHECK (
        features IS NULL OR (array_ndims(features) = 1 AND feature_schema IS NOT NULL AND feature_schema <> '')),
    CONSTRAINT candidates_chosen_check CHECK (NOT (chosen AND rejected IS NOT NULL))
);

-- A conflict is settled one way.
CREATE UNIQUE INDEX candidates_one_chosen ON candidates (conflict_id) WHERE chosen;
CREATE INDEX candidates_feature_schema_idx ON candidates (feature_schema) WHERE features IS NOT NULL;

-- What each service of the plan asked for, accepts at least, and got.
-- The usage view of migration 2 joins on (composition_id, service).
CREATE TABLE allocations (
    composition_id           uuid NOT NULL,
    service                  text NOT NULL CONSTRAINT allocations_service_check CHECK (service <> ''),
    source_ref               text NOT NULL,
    cpu_millicores           bigint NOT NULL CONSTRAINT allocations_cpu_millicores_check CHECK (cpu_millicores >= 0),
    memory_bytes             bigint NOT NULL CONSTRAINT allocations_memory_bytes_check CHECK (memory_bytes >= 0),
    disk_bytes               bigint NOT NULL CONSTRAINT allocations_disk_bytes_check CHECK (disk_bytes >= 0),
    requested_cpu_millicores bigint NOT NULL CONSTRAINT allocations_requested_cpu_check CHECK (requested_cpu_millicores >= 0),
    requested_memory_bytes   bigint NOT NULL CONSTRAINT allocations_requested_memory_check CHECK (requested_memory_bytes >= 0),
    requested_disk_bytes     bigint NOT NULL CONSTRAINT allocations_requested_disk_check CHECK (requested_disk_bytes >= 0),
    minimum_cpu_millicores   bigint NOT NULL CONSTRAINT allocations_minimum_cpu_check CHECK (minimum_cpu_millicores >= 0),
    minimum_memory_bytes     bigint NOT NULL CONSTRAINT allocations_minimum_memory_check CHECK (minimum_memory_bytes >= 0),
    minimum_disk_bytes       bigint NOT NULL CONSTRAINT allocations_minimum_disk_check CHECK (minimum_disk_bytes >= 0),
    optional                 boolean NOT NULL DEFAULT false,
    PRIMARY KEY (composition_id, service),
    CONSTRAINT allocations_source_fkey FOREIGN KEY (composition_id, source_ref)
        REFERENCES composition_sources (composition_id, ref) ON DELETE CASCADE
);

CREATE INDEX allocations_source_ref_idx ON allocations (source_ref);

CREATE TABLE dropped_services (
    composition_id uuid NOT NULL,
    ordinal        integer NOT NULL CONSTRAINT dropped_services_ordinal_check CHECK (ordinal >= 0),
    service        text NOT NULL CONSTRAINT dropped_services_service_check CHECK (service <> ''),
    source_ref     text NOT NULL,
    reason         text NOT NULL CONSTRAINT dropped_services_reason_check CHECK (btrim(reason) <> ''),
    PRIMARY KEY (composition_id, ordinal),
    CONSTRAINT dropped_services_source_fkey FOREIGN KEY (composition_id, source_ref)
        REFERENCES composition_sources (composition_id, ref) ON DELETE CASCADE
);

CREATE INDEX dropped_services_source_ref_idx ON dropped_services (source_ref, service);

-- Outcomes -------------------------------------------------------------------

-- A composition may be reported on many times as it runs; the latest report
-- is its verdict.
CREATE TABLE composition_outcomes (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    composition_id uuid NOT NULL REFERENCES compositions (id) ON DELETE CASCADE,
    verdict        text NOT NULL CONSTRAINT composition_outcomes_verdict_check CHECK (verdict IN ('healthy', 'degraded', 'failed')),
    reported_at    timestamptz NOT NULL DEFAULT now(),
    reporter       text NOT NULL CONSTRAINT composition_outcomes_reporter_check CHECK (reporter <> ''),
    metrics        jsonb NOT NULL DEFAULT '{}' CONSTRAINT composition_outcomes_metrics_check CHECK (jsonb_typeof(metrics) = 'object'),
    -- Lets service outcomes check they belong to the same composition.
    CONSTRAINT composition_outcomes_composition_key UNIQUE (id, composition_id)
);

CREATE INDEX composition_outcomes_composition_idx ON composition_outcomes (composition_id, reported_at DESC, id DESC);
CREATE INDEX composition_outcomes_reported_at_idx ON composition_outcomes (reported_at);

CREATE TABLE service_outcomes (
    outcome_id     bigint NOT NULL,
    composition_id uuid NOT NULL,
    service        text NOT NULL,
    healthy        boolean NOT NULL,
    latency_ms     double precision CONSTRAINT service_outcomes_latency_ms_check CHECK (latency_ms >= 0 AND latency_ms < 'Infinity'),
    error_rate     double precision CONSTRAINT service_outcomes_error_rate_check CHECK (error_rate >= 0 AND error_rate <= 1),
    metrics        jsonb NOT NULL DEFAULT '{}' CONSTRAINT service_outcomes_metrics_check CHECK (jsonb_typeof(metrics) = 'object'),
    observed_at    timestamptz NOT NULL,
    PRIMARY KEY (outcome_id, service),
    CONSTRAINT service_outcomes_outcome_fkey FOREIGN KEY (outcome_id, composition_id)
        REFERENCES composition_outcomes (id, composition_id) ON DELETE CASCADE,
    -- Only a service the plan allocated can be observed.
    CONSTRAINT service_outcomes_service_fkey FOREIGN KEY (composition_id, service)
        REFERENCES allocations (composition_id, service) ON DELETE CASCADE
);

CREATE INDEX service_outcomes_service_idx ON service_outcomes (composition_id, service, observed_at);

-- Capacity ---------------------------------------------------------------------

CREATE TABLE capacity_pools (
    name           text PRIMARY KEY CONSTRAINT capacity_pools_name_check CHECK (name <> ''),
    cpu_millicores bigint NOT NULL CONSTRAINT capacity_pools_cpu_millicores_check CHECK (cpu_millicores > 0),
    memory_bytes   bigint NOT NULL CONSTRAINT capacity_pools_memory_bytes_check CHECK (memory_bytes > 0),
    disk_bytes     bigint NOT NULL CONSTRAINT capacity_pools_disk_bytes_check CHECK (disk_bytes > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Released reservations stay, as history; only unreleased ones count
-- against the pool. The store locks the pool row while it sums them, so
-- reservations never over-commit.
CREATE TABLE reservations (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A pool with reservations cannot vanish from under them.
    pool           text NOT NULL REFERENCES capacity_pools (name) ON DELETE RESTRICT ON UPDATE CASCADE,
    composition_id uuid NOT NULL REFERENCES compositions (id) ON DELETE CASCADE,
    cpu_millicores bigint NOT NULL CONSTRAINT reservations_cpu_millicores_check CHECK (cpu_millicores >= 0),
    memory_bytes   bigint NOT NULL CONSTRAINT reservations_memory_bytes_check CHECK (memory_bytes >= 0),
    disk_bytes     bigint NOT NULL CONSTRAINT reservations_disk_bytes_check CHECK (disk_bytes >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    released_at    timestamptz,
    CONSTRAINT reservations_released_at_check CHECK (released_at >= created_at)
);

-- One live reservation per composition and pool; after a release the
-- composition may reserve again (a retried provisioning).
CREATE UNIQUE INDEX reservations_one_active ON reservations (pool, composition_id) WHERE released_at IS NULL;
CREATE INDEX reservations_active_idx ON reservations (pool) INCLUDE (cpu_millicores, memory_bytes, disk_bytes)
    WHERE released_at IS NULL;
CREATE INDEX reservations_composition_idx ON reservations (composition_id);
CREATE INDEX reservations_pool_idx ON reservations (pool, created_at);

-- Idempotency keys ---------------------------------------------------------------

CREATE TABLE idempotency_keys (
    key            text PRIMARY KEY CONSTRAINT idempotency_keys_key_check CHECK (length(key) BETWEEN 1 AND 255),
    -- Digest of the request body: a key reused for a different request is refused.
    request_digest text NOT NULL CONSTRAINT idempotency_keys_request_digest_check CHECK (request_digest <> ''),
    composition_id uuid NOT NULL REFERENCES compositions (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_expires_at_check CHECK (expires_at > created_at)
);

-- For purging expired keys, and for the cascade from compositions.
CREATE INDEX idempotency_keys_expires_at_idx ON idempotency_keys (expires_at);
CREATE INDEX idempotency_keys_composition_idx ON idempotency_keys (composition_id);

-- Analyst views ------------------------------------------------------------------
-- The only things role snapcompose_analyst may read. Days are UTC dates.

-- One row per composition with its latest verdict: the base of the others,
-- and useful on its own.
CREATE VIEW analyst_compositions AS
SELECT c.id,
       c.name,
       c.strategy,
       c.status,
       c.feasible,
       c.error,
       c.created_at,
       c.finished_at,
       (c.created_at AT TIME ZONE 'UTC')::date AS day,
       mv.version AS model_version,
       o.verdict,
       o.reported_at AS verdict_reported_at
FROM compositions c
LEFT JOIN model_versions mv ON mv.id = c.model_version_id
LEFT JOIN LATERAL (
    SELECT co.verdict, co.reported_at
    FROM composition_outcomes co
    WHERE co.composition_id = c.id
    ORDER BY co.reported_at DESC, co.id DESC
    LIMIT 1
) o ON true;

-- Outcome per strategy and day. success_rate is over finished compositions;
-- healthy_rate over those with a verdict.
CREATE VIEW analyst_outcome_by_strategy AS
SELECT day,
       strategy,
       count(*) AS compositions,
       count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'cancelled')) AS finished,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       round(count(*) FILTER (WHERE status = 'succeeded')::numeric
             / nullif(count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'cancelled')), 0), 4) AS success_rate,
       count(verdict) AS with_verdict,
       count(*) FILTER (WHERE verdict = 'healthy') AS healthy,
       round(count(*) FILTER (WHERE verdict = 'healthy')::numeric / nullif(count(verdict), 0), 4) AS healthy_rate
FROM analyst_compositions
GROUP BY day, strategy;

-- Conflicts per day, kind and the action that settled them.
CREATE VIEW analyst_conflict_kinds AS
SELECT (c.created_at AT TIME ZONE 'UTC')::date AS day,
       cf.kind,
       cf.action,
       count(*) AS conflicts,
       count(DISTINCT cf.composition_id) AS compositions,
       count(*) FILTER (WHERE cf.ambiguous) AS ambiguous
FROM conflicts cf
JOIN compositions c ON c.id = cf.composition_id
GROUP BY 1, cf.kind, cf.action;

-- Per source: how often it is used, wins its conflicts, and ends healthy.
CREATE VIEW analyst_source_reliability AS
SELECT s.ref AS source_ref,
       s.type,
       count(*) AS compositions,
       count(*) FILTER (WHERE ac.status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE ac.status = 'failed') AS failed,
       count(ac.verdict) AS with_verdict,
       count(*) FILTER (WHERE ac.verdict = 'healthy') AS healthy,
       round(count(*) FILTER (WHERE ac.verdict = 'healthy')::numeric / nullif(count(ac.verdict), 0), 4) AS healthy_share,
       coalesce(sum(cf.involved), 0) AS conflicts,
       coalesce(sum(cf.won), 0) AS conflicts_won,
       coalesce(sum(d.dropped), 0) AS services_dropped,
       max(ac.created_at) AS last_used_at
FROM composition_sources s
JOIN analyst_compositions ac ON ac.id = s.composition_id
LEFT JOIN LATERAL (
    SELECT count(*) AS involved, count(*) FILTER (WHERE x.winner = s.ref) AS won
    FROM conflicts x
    WHERE x.composition_id = s.composition_id
      AND x.claimants @> jsonb_build_array(jsonb_build_object('source', s.ref))
) cf ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS dropped
    FROM dropped_services ds
    WHERE ds.composition_id = s.composition_id AND ds.source_ref = s.ref
) d ON true
GROUP BY s.ref, s.type;

-- Model versions with their metrics and how the compositions they decided
-- turned out. The model bytes are left out.
CREATE VIEW analyst_model_versions AS
SELECT mv.version,
       mv.created_at,
       mv.promoted,
       mv.promoted_at,
       mv.feature_schema,
       mv.onnx_digest,
       octet_length(mv.onnx) AS onnx_bytes,
       mv.metrics,
       mv.card,
       tr.id AS training_run_id,
       tr.data_from,
       tr.data_to,
       tr.rows AS training_rows,
       coalesce(u.compositions, 0) AS compositions,
       coalesce(u.with_verdict, 0) AS with_verdict,
       coalesce(u.healthy, 0) AS healthy,
       round(u.healthy::numeric / nullif(u.with_verdict, 0), 4) AS healthy_rate
FROM model_versions mv
LEFT JOIN LATERAL (
    SELECT t.id, t.data_from, t.data_to, t.rows
    FROM training_runs t
    WHERE t.model_version_id = mv.id
    ORDER BY t.finished_at DESC NULLS LAST, t.id DESC
    LIMIT 1
) tr ON true
LEFT JOIN (
    SELECT model_version,
           count(*) AS compositions,
           count(verdict) AS with_verdict,
           count(*) FILTER (WHERE verdict = 'healthy') AS healthy
    FROM analyst_compositions
    WHERE model_version IS NOT NULL
    GROUP BY model_version
) u ON u.model_version = mv.version;

-- What analysts see with \dv+ or \d+ analyst_...; examples:
--   SELECT strategy, sum(compositions), avg(healthy_rate) FROM analyst_outcome_by_strategy
--     WHERE day >= current_date - 30 GROUP BY strategy;
--   SELECT day, kind, action, conflicts FROM analyst_conflict_kinds ORDER BY day DESC, conflicts DESC;
--   SELECT * FROM analyst_source_reliability WHERE compositions >= 20 ORDER BY healthy_share NULLS FIRST LIMIT 10;
--   SELECT version, promoted, metrics->>'auc' AS auc, healthy_rate FROM analyst_model_versions ORDER BY created_at DESC;
COMMENT ON VIEW analyst_compositions IS
    'One row per composition: strategy, status, UTC day, the model version that scored it, and its latest verdict (NULL until reported).';
COMMENT ON VIEW analyst_outcome_by_strategy IS
    'Per UTC day and strategy: compositions made, finished, succeeded, failed; success_rate = succeeded / finished; healthy_rate = latest verdict healthy / compositions with a verdict.';
COMMENT ON VIEW analyst_conflict_kinds IS
    'Per UTC day (of the composition), conflict kind and the action that settled it: conflicts, compositions they occurred in, and how many were ambiguous.';
COMMENT ON VIEW analyst_source_reliability IS
    'Per source ref (template:<id> or live:<host>:<path>): compositions using it, their outcomes, healthy_share among those with a verdict, conflicts it took part in and won, services of it dropped.';
COMMENT ON VIEW analyst_model_versions IS
    'Every model version with its card and metrics, the training run that made it (data window, rows), and how the compositions it scored turned out. The model bytes are left out.';

-- Analyst role -------------------------------------------------------------------
-- Roles are cluster-wide and several databases may share a cluster (tests
-- do), so create it only if absent, tolerating a concurrent creator.
-- Creating it needs CREATEROLE; where the migrating user lacks that, an
-- administrator creates the role beforehand and this step is skipped.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'snapcompose_analyst') THEN
        CREATE ROLE snapcompose_analyst NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END
$$;

-- Nothing on base tables, sequences or functions of ours, for the role or
-- anyone through PUBLIC; views run with their owner's rights, so SELECT on
-- them is all the role needs.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC, snapcompose_analyst;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM PUBLIC, snapcompose_analyst;
GRANT USAGE ON SCHEMA public TO snapcompose_analyst;
GRANT SELECT ON analyst_compositions, analyst_outcome_by_strategy, analyst_conflict_kinds,
    analyst_source_reliability, analyst_model_versions TO snapcompose_analyst;
