-- River 1 (create_river_migration), undone: migration/main/001_create_river_migration.down.sql of River v0.51.2.

DROP TABLE river_migration;
