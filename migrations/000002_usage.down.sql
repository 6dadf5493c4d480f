-- Dropping the views also drops the analyst role's grants on them.
DROP VIEW IF EXISTS analyst_allocation_vs_usage;
DROP VIEW IF EXISTS analyst_usage_summary;
DROP TABLE IF EXISTS usage_samples;
DROP TABLE IF EXISTS usage_series;
