-- Migration 0018_currencies on SQLite: the deal tallies keep each currency apart (a sum never adds two
-- currencies as one; services/currencies.py converts at read time with the organisation's rates).
-- The deal triggers of 0010_tallies_sqlite.sql with `currency` in every group, the WHEN clause
-- watching it too; the migration drops the old triggers and the old rows first, and this file
-- counts today's deals again. Frozen like its migration.

CREATE TRIGGER deal_tallies_insert AFTER INSERT ON deals
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT NEW.org_id, NEW.owner_id, NEW.stage_id, NEW.status, NEW.currency,
           strftime('%Y-%m-01', NEW.expected_close_date) AS expected_month,
           CASE WHEN NEW.status IN ('won', 'lost') THEN strftime('%Y-%m-01', NEW.closed_at) END AS closed_month,
           1 AS deals,
           1 * NEW.value AS value,
           1 * round(NEW.value * (CASE NEW.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(NEW.probability, (SELECT probability FROM pipeline_stages WHERE id = NEW.stage_id), 0) END) / 100.0, 2) AS weighted,
           1 * (CASE WHEN NEW.status = 'won' AND NEW.closed_at IS NOT NULL THEN julianday(NEW.closed_at) - julianday(NEW.created_at) ELSE 0 END) AS won_days,
           1 * (CASE WHEN NEW.status = 'won' AND NEW.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
    WHERE NEW.deleted_at IS NULL;
END;

CREATE TRIGGER deal_tallies_update AFTER UPDATE ON deals
WHEN OLD.org_id IS NOT NEW.org_id OR OLD.owner_id IS NOT NEW.owner_id OR OLD.stage_id IS NOT NEW.stage_id
    OR OLD.status IS NOT NEW.status OR OLD.currency IS NOT NEW.currency OR OLD.expected_close_date IS NOT NEW.expected_close_date
    OR OLD.closed_at IS NOT NEW.closed_at OR OLD.value IS NOT NEW.value OR OLD.probability IS NOT NEW.probability
    OR OLD.created_at IS NOT NEW.created_at OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT OLD.org_id, OLD.owner_id, OLD.stage_id, OLD.status, OLD.currency,
           strftime('%Y-%m-01', OLD.expected_close_date) AS expected_month,
           CASE WHEN OLD.status IN ('won', 'lost') THEN strftime('%Y-%m-01', OLD.closed_at) END AS closed_month,
           -1 AS deals,
           -1 * OLD.value AS value,
           -1 * round(OLD.value * (CASE OLD.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(OLD.probability, (SELECT probability FROM pipeline_stages WHERE id = OLD.stage_id), 0) END) / 100.0, 2) AS weighted,
           -1 * (CASE WHEN OLD.status = 'won' AND OLD.closed_at IS NOT NULL THEN julianday(OLD.closed_at) - julianday(OLD.created_at) ELSE 0 END) AS won_days,
           -1 * (CASE WHEN OLD.status = 'won' AND OLD.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
    WHERE OLD.deleted_at IS NULL;
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT NEW.org_id, NEW.owner_id, NEW.stage_id, NEW.status, NEW.currency,
           strftime('%Y-%m-01', NEW.expected_close_date) AS expected_month,
           CASE WHEN NEW.status IN ('won', 'lost') THEN strftime('%Y-%m-01', NEW.closed_at) END AS closed_month,
           1 AS deals,
           1 * NEW.value AS value,
           1 * round(NEW.value * (CASE NEW.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(NEW.probability, (SELECT probability FROM pipeline_stages WHERE id = NEW.stage_id), 0) END) / 100.0, 2) AS weighted,
           1 * (CASE WHEN NEW.status = 'won' AND NEW.closed_at IS NOT NULL THEN julianday(NEW.closed_at) - julianday(NEW.created_at) ELSE 0 END) AS won_days,
           1 * (CASE WHEN NEW.status = 'won' AND NEW.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
    WHERE NEW.deleted_at IS NULL;
END;

CREATE TRIGGER deal_tallies_delete AFTER DELETE ON deals
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT OLD.org_id, OLD.owner_id, OLD.stage_id, OLD.status, OLD.currency,
           strftime('%Y-%m-01', OLD.expected_close_date) AS expected_month,
           CASE WHEN OLD.status IN ('won', 'lost') THEN strftime('%Y-%m-01', OLD.closed_at) END AS closed_month,
           -1 AS deals,
           -1 * OLD.value AS value,
           -1 * round(OLD.value * (CASE OLD.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(OLD.probability, (SELECT probability FROM pipeline_stages WHERE id = OLD.stage_id), 0) END) / 100.0, 2) AS weighted,
           -1 * (CASE WHEN OLD.status = 'won' AND OLD.closed_at IS NOT NULL THEN julianday(OLD.closed_at) - julianday(OLD.created_at) ELSE 0 END) AS won_days,
           -1 * (CASE WHEN OLD.status = 'won' AND OLD.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
    WHERE OLD.deleted_at IS NULL;
END;

CREATE TRIGGER deal_tallies_stage_probability AFTER UPDATE OF probability ON pipeline_stages
WHEN OLD.probability IS NOT NEW.probability
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT org_id, owner_id, stage_id, status, currency, expected_month, closed_month, 0, 0, sum(delta), 0, 0
    FROM (
        SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
               strftime('%Y-%m-01', d.expected_close_date) AS expected_month,
               CASE WHEN d.status IN ('won', 'lost') THEN strftime('%Y-%m-01', d.closed_at) END AS closed_month,
               round(d.value * NEW.probability / 100.0, 2) - round(d.value * OLD.probability / 100.0, 2) AS delta
        FROM deals d
        WHERE d.stage_id = OLD.id AND d.deleted_at IS NULL AND d.status = 'open' AND d.probability IS NULL
    ) AS rebased
    GROUP BY org_id, owner_id, stage_id, status, currency, expected_month, closed_month
    HAVING sum(delta) <> 0;
END;

CREATE TRIGGER deal_tallies_stage_delete BEFORE DELETE ON pipeline_stages
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT org_id, owner_id, stage_id, status, currency, expected_month, closed_month, 0, 0, sum(delta), 0, 0
    FROM (
        SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
               strftime('%Y-%m-01', d.expected_close_date) AS expected_month,
               CASE WHEN d.status IN ('won', 'lost') THEN strftime('%Y-%m-01', d.closed_at) END AS closed_month,
               round(d.value * 0 / 100.0, 2) - round(d.value * OLD.probability / 100.0, 2) AS delta
        FROM deals d
        WHERE d.stage_id = OLD.id AND d.deleted_at IS NULL AND d.status = 'open' AND d.probability IS NULL
    ) AS rebased
    GROUP BY org_id, owner_id, stage_id, status, currency, expected_month, closed_month
    HAVING sum(delta) <> 0;
END;

INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
                          deals, value, weighted, won_days, won_timed)
SELECT org_id, owner_id, stage_id, status, currency, expected_month, closed_month,
       sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
FROM (
    SELECT d.org_id, d.owner_id, d.stage_id, d.status, d.currency,
           strftime('%Y-%m-01', d.expected_close_date) AS expected_month,
           CASE WHEN d.status IN ('won', 'lost') THEN strftime('%Y-%m-01', d.closed_at) END AS closed_month,
           1 AS deals,
           1 * d.value AS value,
           1 * round(d.value * (CASE d.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(d.probability, (SELECT probability FROM pipeline_stages s WHERE s.id = d.stage_id), 0) END) / 100.0, 2) AS weighted,
           1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN julianday(d.closed_at) - julianday(d.created_at) ELSE 0 END) AS won_days,
           1 * (CASE WHEN d.status = 'won' AND d.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
    FROM deals d
    WHERE d.deleted_at IS NULL
) AS changed
GROUP BY org_id, owner_id, stage_id, status, currency, expected_month, closed_month
HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;

UPDATE deal_tallies SET compacted = true;
