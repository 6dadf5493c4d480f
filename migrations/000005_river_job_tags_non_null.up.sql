-- River 3 (river_job_tags_non_null): the job queue's schema, from github.com/riverqueue/river
-- riverdriver/riverpgxv5 v0.51.2 migration/main/003_river_job_tags_non_null.up.sql, folded into ours so one
-- 'snapcompose migrate' sets up everything. The row in river_migration keeps River's
-- own migrator in agreement.

ALTER TABLE river_job ALTER COLUMN tags SET DEFAULT '{}';
UPDATE river_job SET tags = '{}' WHERE tags IS NULL;
ALTER TABLE river_job ALTER COLUMN tags SET NOT NULL;

INSERT INTO river_migration (version) VALUES (3);
