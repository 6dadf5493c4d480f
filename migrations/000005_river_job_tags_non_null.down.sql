-- River 3 (river_job_tags_non_null), undone: migration/main/003_river_job_tags_non_null.down.sql of River v0.51.2.

DELETE FROM river_migration WHERE version = 3;

ALTER TABLE river_job
    ALTER COLUMN tags DROP NOT NULL,
    ALTER COLUMN tags DROP DEFAULT;

