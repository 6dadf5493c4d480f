-- Resource usage history: one series per (origin, host, service), sampled at
-- a fixed interval. Series come from the Bitbrains trace (`snapcompose import
-- usage`), from snapagent captures of live hosts, or from usage reported back
-- for a composition's services.

CREATE TABLE usage_series (
    id                         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin                     text   NOT NULL CONSTRAINT usage_series_origin_check
                                      CHECK (origin IN ('bitbrains', 'snapagent', 'report')),
    host                       text   NOT NULL CHECK (host <> ''),
    service                    text   NOT NULL CHECK (service <> ''),
    -- The composition whose service this is, when it is one; its usage then
    -- goes away with it.
    composition_id             uuid   REFERENCES compositions (id) ON DELETE CASCADE,
    interval_seconds           integer NOT NULL CHECK (interval_seconds > 0),
    -- The largest capacity any sample reported: what the service was given.
    cpu_provisioned_millicores bigint NOT NULL DEFAULT 0 CHECK (cpu_provisioned_millicores >= 0),
    memory_provisioned_bytes   bigint NOT NULL DEFAULT 0 CHECK (memory_provisioned_bytes >= 0),
    first_sample_at            timestamptz,
    last_sample_at             timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT usage_series_key UNIQUE (origin, host, service),
    CONSTRAINT usage_series_sample_range_check CHECK (first_sample_at <= last_sample_at)
);

-- analyst_allocation_vs_usage joins on (composition_id, service); the cascade from
-- compositions needs composition_id indexed too.
CREATE INDEX usage_series_composition ON usage_series (composition_id, service)
    WHERE composition_id IS NOT NULL;

-- Throughputs are real (float4): seven significant digits are finer than the
-- measurements, and the table holds millions of rows. The `< 'Infinity'`
-- checks also reject NaN, which Postgres orders above every number.
CREATE TABLE usage_samples (
    series_id               bigint      NOT NULL REFERENCES usage_series (id) ON DELETE CASCADE,
    ts                      timestamptz NOT NULL,
    cpu_millicores          bigint      NOT NULL CHECK (cpu_millicores >= 0),
    cpu_capacity_millicores bigint      NOT NULL CHECK (cpu_capacity_millicores >= 0),
    memory_bytes            bigint      NOT NULL CHECK (memory_bytes >= 0),
    memory_capacity_bytes   bigint      NOT NULL CHECK (memory_capacity_bytes >= 0),
    disk_read_kbps          real        NOT NULL CHECK (disk_read_kbps >= 0 AND disk_read_kbps < 'Infinity'),
    disk_write_kbps         real        NOT NULL CHECK (disk_write_kbps >= 0 AND disk_write_kbps < 'Infinity'),
    net_rx_kbps             real        NOT NULL CHECK (net_rx_kbps >= 0 AND net_rx_kbps < 'Infinity'),
    net_tx_kbps             real        NOT NULL CHECK (net_tx_kbps >= 0 AND net_tx_kbps < 'Infinity'),
    -- One sample per series and instant; also the index for one series'
    -- samples over a time range.
    PRIMARY KEY (series_id, ts)
);

-- Usage of every series over a time range (a window across hosts).
CREATE INDEX usage_samples_ts ON usage_samples (ts);

-- One row per series: how many samples, over what time, and how much CPU
-- and memory the service really used.
CREATE VIEW analyst_usage_summary AS
SELECT s.id                                                              AS series_id,
       s.origin,
       s.host,
       s.service,
       s.composition_id,
       s.interval_seconds,
       s.cpu_provisioned_millicores,
       s.memory_provisioned_bytes,
       count(u.ts)                                                       AS samples,
       min(u.ts)                                                         AS first_sample_at,
       max(u.ts)                                                         AS last_sample_at,
       avg(u.cpu_millicores)::double precision                           AS cpu_mean_millicores,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY u.cpu_millicores)    AS cpu_p95_millicores,
       max(u.cpu_millicores)                                             AS cpu_max_millicores,
       avg(u.memory_bytes)::double precision                             AS memory_mean_bytes,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY u.memory_bytes)      AS memory_p95_bytes,
       max(u.memory_bytes)                                               AS memory_max_bytes
FROM usage_series s
LEFT JOIN usage_samples u ON u.series_id = s.id
GROUP BY s.id;

-- How well each composed service's allocation fitted what it then used, one
-- row per service and usage series:
--   overrun rate = share of samples whose usage exceeds the allocation;
--   slack        = (allocation - mean usage) / allocation, negative when the
--                  service used more than it was given on average, NULL for
--                  a zero allocation.
CREATE VIEW analyst_allocation_vs_usage AS
SELECT a.composition_id,
       a.service,
       s.id                                                                AS series_id,
       s.origin,
       s.host,
       a.cpu_millicores                                                    AS cpu_allocated_millicores,
       a.memory_bytes                                                      AS memory_allocated_bytes,
       count(*)                                                            AS samples,
       min(u.ts)                                                           AS first_sample_at,
       max(u.ts)                                                           AS last_sample_at,
       avg(u.cpu_millicores)::double precision                             AS cpu_mean_millicores,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY u.cpu_millicores)      AS cpu_p95_millicores,
       max(u.cpu_millicores)                                               AS cpu_max_millicores,
       avg((u.cpu_millicores > a.cpu_millicores)::int)::double precision   AS cpu_overrun_rate,
       ((a.cpu_millicores - avg(u.cpu_millicores))
           / NULLIF(a.cpu_millicores, 0))::double precision                AS cpu_slack,
       avg(u.memory_bytes)::double precision                               AS memory_mean_bytes,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY u.memory_bytes)        AS memory_p95_bytes,
       max(u.memory_bytes)                                                 AS memory_max_bytes,
       avg((u.memory_bytes > a.memory_bytes)::int)::double precision       AS memory_overrun_rate,
       ((a.memory_bytes - avg(u.memory_bytes))
           / NULLIF(a.memory_bytes, 0))::double precision                  AS memory_slack
FROM allocations a
JOIN usage_series s ON s.composition_id = a.composition_id AND s.service = a.service
JOIN usage_samples u ON u.series_id = s.id
GROUP BY a.composition_id, a.service, a.cpu_millicores, a.memory_bytes, s.id;

-- The analyst role (created by 000001) reads views only.
GRANT SELECT ON analyst_usage_summary, analyst_allocation_vs_usage TO snapcompose_analyst;
