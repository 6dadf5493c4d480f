-- River 8 (job_id_autoincrement): the job queue's schema, from github.com/riverqueue/river
-- riverdriver/riverpgxv5 v0.51.2 migration/main/008_job_id_autoincrement.up.sql, folded into ours so one
-- 'snapcompose migrate' sets up everything. The row in river_migration keeps River's
-- own migrator in agreement.

-- No-op. Postgres sequences already prevent automatically generated job IDs
-- from being reused.
SELECT 1;

INSERT INTO river_migration (line, version) VALUES ('main', 8);
