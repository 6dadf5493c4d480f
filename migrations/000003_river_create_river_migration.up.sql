-- River 1 (create_river_migration): the job queue's schema, from github.com/riverqueue/river
-- riverdriver/riverpgxv5 v0.51.2 migration/main/001_create_river_migration.up.sql, folded into ours so one
-- 'snapcompose migrate' sets up everything. The row in river_migration keeps River's
-- own migrator in agreement.

CREATE TABLE river_migration(
  id bigserial PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT NOW(),
  version bigint NOT NULL,
  CONSTRAINT version CHECK (version >= 1)
);

CREATE UNIQUE INDEX ON river_migration USING btree(version);
INSERT INTO river_migration (version) VALUES (1);
