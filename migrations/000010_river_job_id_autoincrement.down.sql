-- River 8 (job_id_autoincrement), undone: migration/main/008_job_id_autoincrement.down.sql of River v0.51.2.

DELETE FROM river_migration WHERE line = 'main' AND version = 8;

-- No-op. Postgres sequences already prevent automatically generated job IDs
-- from being reused.
SELECT 1;

