-- Undo 000001_history.up.sql completely.

-- The role's grants in this database go first, so that dropping the role
-- below is not held back by this database.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'snapcompose_analyst') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM snapcompose_analyst;
        REVOKE ALL ON SCHEMA public FROM snapcompose_analyst;
    END IF;
END
$$;

DROP VIEW IF EXISTS analyst_model_versions, analyst_source_reliability, analyst_conflict_kinds,
    analyst_outcome_by_strategy, analyst_compositions;

-- One statement, since templates and template_versions refer to each other.
DROP TABLE IF EXISTS
    idempotency_keys,
    reservations,
    capacity_pools,
    service_outcomes,
    composition_outcomes,
    dropped_services,
    allocations,
    candidates,
    conflicts,
    claims,
    snapshots,
    composition_sources,
    compositions,
    training_runs,
    model_versions,
    template_versions,
    templates;

-- Roles are cluster-wide: another database of the cluster may still grant
-- to this one, and then it stays, for that database's own down migration.
DO $$
BEGIN
    DROP ROLE IF EXISTS snapcompose_analyst;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'role snapcompose_analyst kept: other databases still grant it privileges';
END
$$;
