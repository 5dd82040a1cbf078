-- Migration 0018_currencies on PostgreSQL: the deal tallies keep each currency apart (a sum never adds
-- two currencies as one; services/currencies.py converts at read time with the organisation's rates).
-- The trigger functions of 0010_tallies_postgresql.sql with `currency` in every group (the triggers
-- stay); the migration drops the old rows first, and this file counts today's deals again. Frozen
-- like its migration.

CREATE OR REPLACE FUNCTION deal_tallies_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM 1 FROM pipeline_stages WHERE id IN (SELECT stage_id FROM new_rows) ORDER BY id FOR SHARE;
        INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                                  deals, value, weighted, won_days, won_timed)
        SELECT org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
               sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
        FROM (
            SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
                   date_trunc('month', d.expected_close_date::timestamp)::date AS expected_month,
                   CASE WHEN d.status IN ('won', 'lost') THEN date_trunc('month', d.closed_at AT TIME ZONE 'UTC')::date END AS closed_month,
                   1 AS deals,
                   1 * d.value AS value,
                   1 * CAST(d.value * (CASE d.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(d.probability, s.probability, 0) END) / 100 AS numeric(16, 2)) AS weighted,
                   1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN extract(epoch FROM d.closed_at - d.created_at) / 86400.0 ELSE 0 END) AS won_days,
                   1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
            FROM new_rows d LEFT JOIN pipeline_stages s ON s.id = d.stage_id
            WHERE d.deleted_at IS NULL
        ) AS changed
        GROUP BY org_id, owner_id, stage_id, status, currency, expected_month, closed_month
        HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM 1 FROM pipeline_stages WHERE id IN (SELECT stage_id FROM old_rows UNION SELECT stage_id FROM new_rows) ORDER BY id FOR SHARE;
        INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                                  deals, value, weighted, won_days, won_timed)
        SELECT org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
               sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
        FROM (
            SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
                   date_trunc('month', d.expected_close_date::timestamp)::date AS expected_month,
                   CASE WHEN d.status IN ('won', 'lost') THEN date_trunc('month', d.closed_at AT TIME ZONE 'UTC')::date END AS closed_month,
                   -1 AS deals,
                   -1 * d.value AS value,
                   -1 * CAST(d.value * (CASE d.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(d.probability, s.probability, 0) END) / 100 AS numeric(16, 2)) AS weighted,
                   -1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN extract(epoch FROM d.closed_at - d.created_at) / 86400.0 ELSE 0 END) AS won_days,
                   -1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
            FROM old_rows d LEFT JOIN pipeline_stages s ON s.id = d.stage_id
            WHERE d.deleted_at IS NULL
            UNION ALL
            SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
                   date_trunc('month', d.expected_close_date::timestamp)::date AS expected_month,
                   CASE WHEN d.status IN ('won', 'lost') THEN date_trunc('month', d.closed_at AT TIME ZONE 'UTC')::date END AS closed_month,
                   1 AS deals,
                   1 * d.value AS value,
                   1 * CAST(d.value * (CASE d.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(d.probability, s.probability, 0) END) / 100 AS numeric(16, 2)) AS weighted,
                   1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN extract(epoch FROM d.closed_at - d.created_at) / 86400.0 ELSE 0 END) AS won_days,
                   1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
            FROM new_rows d LEFT JOIN pipeline_stages s ON s.id = d.stage_id
            WHERE d.deleted_at IS NULL
        ) AS changed
        GROUP BY org_id, owner_id, stage_id, status, currency, expected_month, closed_month
        HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;
    ELSE
        PERFORM 1 FROM pipeline_stages WHERE id IN (SELECT stage_id FROM old_rows) ORDER BY id FOR SHARE;
        INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                                  deals, value, weighted, won_days, won_timed)
        SELECT org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
               sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
        FROM (
            SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
                   date_trunc('month', d.expected_close_date::timestamp)::date AS expected_month,
                   CASE WHEN d.status IN ('won', 'lost') THEN date_trunc('month', d.closed_at AT TIME ZONE 'UTC')::date END AS closed_month,
                   -1 AS deals,
                   -1 * d.value AS value,
                   -1 * CAST(d.value * (CASE d.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(d.probability, s.probability, 0) END) / 100 AS numeric(16, 2)) AS weighted,
                   -1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN extract(epoch FROM d.closed_at - d.created_at) / 86400.0 ELSE 0 END) AS won_days,
                   -1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
            FROM old_rows d LEFT JOIN pipeline_stages s ON s.id = d.stage_id
            WHERE d.deleted_at IS NULL
        ) AS changed
        GROUP BY org_id, owner_id, stage_id, status, currency, expected_month, closed_month
        HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION deal_tallies_rebase_stage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE new_percent integer := 0;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        new_percent := NEW.probability;
    END IF;
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT org_id, owner_id, stage_id, status, currency, expected_month, closed_month, 0, 0, sum(delta), 0, 0
    FROM (
        SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
               date_trunc('month', d.expected_close_date::timestamp)::date AS expected_month,
               CASE WHEN d.status IN ('won', 'lost') THEN date_trunc('month', d.closed_at AT TIME ZONE 'UTC')::date END AS closed_month,
               CAST(d.value * new_percent / 100 AS numeric(16, 2)) - CAST(d.value * OLD.probability / 100 AS numeric(16, 2)) AS delta
        FROM deals d
        WHERE d.stage_id = OLD.id AND d.deleted_at IS NULL AND d.status = 'open' AND d.probability IS NULL
    ) AS rebased
    GROUP BY org_id, owner_id, stage_id, status, currency, expected_month, closed_month
    HAVING sum(delta) <> 0;
    RETURN OLD;  -- a BEFORE DELETE trigger returning NULL would cancel the delete
END $$;

INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                          deals, value, weighted, won_days, won_timed)
SELECT org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
       sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
FROM (
    SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
           date_trunc('month', d.expected_close_date::timestamp)::date AS expected_month,
           CASE WHEN d.status IN ('won', 'lost') THEN date_trunc('month', d.closed_at AT TIME ZONE 'UTC')::date END AS closed_month,
           1 AS deals,
           1 * d.value AS value,
           1 * CAST(d.value * (CASE d.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(d.probability, s.probability, 0) END) / 100 AS numeric(16, 2)) AS weighted,
           1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN extract(epoch FROM d.closed_at - d.created_at) / 86400.0 ELSE 0 END) AS won_days,
           1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
    FROM deals d LEFT JOIN pipeline_stages s ON s.id = d.stage_id
    WHERE d.deleted_at IS NULL
) AS changed
GROUP BY org_id, owner_id, stage_id, status, currency, expected_month, closed_month
HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;

UPDATE deal_tallies SET compacted = true;
