-- Migration 0010_tallies on SQLite, after it created deal_tallies and activity_tallies: the triggers
-- that keep them, and today's totals. Executed statement by statement by
-- migrations/versions/0010_tallies.py (why tallies: its docstring). Frozen like that migration: a
-- change is a new migration with its own file. tests/test_database_sql.py checks that the schema's
-- triggers are exactly the ones these files create, and that a deal weighs here what
-- services/forecast.py says it weighs.
--
-- The same groups and sums as 0010_tallies_postgresql.sql. SQLite has no statement-level triggers:
-- these are row-level, and an update that changed no counted column skips them (the WHEN).
-- round(): SQLite's CAST to NUMERIC does not round to the cent.

CREATE TRIGGER deal_tallies_insert AFTER INSERT ON deals
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT NEW.org_id, NEW.owner_id, NEW.stage_id, NEW.status,
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
    OR OLD.status IS NOT NEW.status OR OLD.expected_close_date IS NOT NEW.expected_close_date
    OR OLD.closed_at IS NOT NEW.closed_at OR OLD.value IS NOT NEW.value OR OLD.probability IS NOT NEW.probability
    OR OLD.created_at IS NOT NEW.created_at OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT OLD.org_id, OLD.owner_id, OLD.stage_id, OLD.status,
           strftime('%Y-%m-01', OLD.expected_close_date) AS expected_month,
           CASE WHEN OLD.status IN ('won', 'lost') THEN strftime('%Y-%m-01', OLD.closed_at) END AS closed_month,
           -1 AS deals,
           -1 * OLD.value AS value,
           -1 * round(OLD.value * (CASE OLD.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(OLD.probability, (SELECT probability FROM pipeline_stages WHERE id = OLD.stage_id), 0) END) / 100.0, 2) AS weighted,
           -1 * (CASE WHEN OLD.status = 'won' AND OLD.closed_at IS NOT NULL THEN julianday(OLD.closed_at) - julianday(OLD.created_at) ELSE 0 END) AS won_days,
           -1 * (CASE WHEN OLD.status = 'won' AND OLD.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
    WHERE OLD.deleted_at IS NULL;
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT NEW.org_id, NEW.owner_id, NEW.stage_id, NEW.status,
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
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT OLD.org_id, OLD.owner_id, OLD.stage_id, OLD.status,
           strftime('%Y-%m-01', OLD.expected_close_date) AS expected_month,
           CASE WHEN OLD.status IN ('won', 'lost') THEN strftime('%Y-%m-01', OLD.closed_at) END AS closed_month,
           -1 AS deals,
           -1 * OLD.value AS value,
           -1 * round(OLD.value * (CASE OLD.status WHEN 'won' THEN 100 WHEN 'lost' THEN 0 ELSE coalesce(OLD.probability, (SELECT probability FROM pipeline_stages WHERE id = OLD.stage_id), 0) END) / 100.0, 2) AS weighted,
           -1 * (CASE WHEN OLD.status = 'won' AND OLD.closed_at IS NOT NULL THEN julianday(OLD.closed_at) - julianday(OLD.created_at) ELSE 0 END) AS won_days,
           -1 * (CASE WHEN OLD.status = 'won' AND OLD.closed_at IS NOT NULL THEN 1 ELSE 0 END) AS won_timed
    WHERE OLD.deleted_at IS NULL;
END;

CREATE TRIGGER activity_tallies_insert AFTER INSERT ON activities
BEGIN
    INSERT INTO activity_tallies (org_id, owner_id, status, type, activities)
    SELECT NEW.org_id, NEW.owner_id, NEW.status, NEW.type, 1 WHERE NEW.deleted_at IS NULL;
END;

CREATE TRIGGER activity_tallies_update AFTER UPDATE ON activities
WHEN OLD.org_id IS NOT NEW.org_id OR OLD.owner_id IS NOT NEW.owner_id OR OLD.status IS NOT NEW.status
    OR OLD.type IS NOT NEW.type OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN
    INSERT INTO activity_tallies (org_id, owner_id, status, type, activities)
    SELECT OLD.org_id, OLD.owner_id, OLD.status, OLD.type, -1 WHERE OLD.deleted_at IS NULL;
    INSERT INTO activity_tallies (org_id, owner_id, status, type, activities)
    SELECT NEW.org_id, NEW.owner_id, NEW.status, NEW.type, 1 WHERE NEW.deleted_at IS NULL;
END;

CREATE TRIGGER activity_tallies_delete AFTER DELETE ON activities
BEGIN
    INSERT INTO activity_tallies (org_id, owner_id, status, type, activities)
    SELECT OLD.org_id, OLD.owner_id, OLD.status, OLD.type, -1 WHERE OLD.deleted_at IS NULL;
END;

-- A stage's probability weighs its open deals that have none of their own: changing it, or deleting
-- the stage (which leaves them at 0 %), appends the difference for those deals.
CREATE TRIGGER deal_tallies_stage_probability AFTER UPDATE OF probability ON pipeline_stages
WHEN OLD.probability IS NOT NEW.probability
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT org_id, owner_id, stage_id, status, expected_month, closed_month, 0, 0, sum(delta), 0, 0
    FROM (
        SELECT d.org_id, d.owner_id, d.stage_id, d.status,
               strftime('%Y-%m-01', d.expected_close_date) AS expected_month,
               CASE WHEN d.status IN ('won', 'lost') THEN strftime('%Y-%m-01', d.closed_at) END AS closed_month,
               round(d.value * NEW.probability / 100.0, 2) - round(d.value * OLD.probability / 100.0, 2) AS delta
        FROM deals d
        WHERE d.stage_id = OLD.id AND d.deleted_at IS NULL AND d.status = 'open' AND d.probability IS NULL
    ) AS rebased
    GROUP BY org_id, owner_id, stage_id, status, expected_month, closed_month
    HAVING sum(delta) <> 0;
END;

-- BEFORE: the stage's deals still point at it (the delete then sets their stage to NULL).
CREATE TRIGGER deal_tallies_stage_delete BEFORE DELETE ON pipeline_stages
BEGIN
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT org_id, owner_id, stage_id, status, expected_month, closed_month, 0, 0, sum(delta), 0, 0
    FROM (
        SELECT d.org_id, d.owner_id, d.stage_id, d.status,
               strftime('%Y-%m-01', d.expected_close_date) AS expected_month,
               CASE WHEN d.status IN ('won', 'lost') THEN strftime('%Y-%m-01', d.closed_at) END AS closed_month,
               round(d.value * 0 / 100.0, 2) - round(d.value * OLD.probability / 100.0, 2) AS delta
        FROM deals d
        WHERE d.stage_id = OLD.id AND d.deleted_at IS NULL AND d.status = 'open' AND d.probability IS NULL
    ) AS rebased
    GROUP BY org_id, owner_id, stage_id, status, expected_month, closed_month
    HAVING sum(delta) <> 0;
END;

-- Today's totals, one row per group, already compacted (services/tallies.py folds appended rows).
INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                          deals, value, weighted, won_days, won_timed)
SELECT org_id, owner_id, stage_id, status, expected_month, closed_month,
       sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
FROM (
    SELECT d.org_id, d.owner_id, d.stage_id, d.status,
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
GROUP BY org_id, owner_id, stage_id, status, expected_month, closed_month
HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;

INSERT INTO activity_tallies (org_id, owner_id, status, type, activities)
SELECT org_id, owner_id, status, type, sum(activities)
FROM (
    SELECT org_id, owner_id, status, type, 1 AS activities FROM activities WHERE deleted_at IS NULL
) AS changed
GROUP BY org_id, owner_id, status, type
HAVING sum(activities) <> 0;

UPDATE deal_tallies SET compacted = true;
UPDATE activity_tallies SET compacted = true;
