-- Migration 0010_tallies on PostgreSQL, after it created deal_tallies and activity_tallies: their
-- tenant policy, the triggers that keep them, and today's totals. Executed statement by statement by
-- migrations/versions/0010_tallies.py (why tallies: its docstring). Frozen like that migration: a
-- change is a new migration with its own file. tests/test_database_sql.py checks that the schema's
-- functions and triggers are exactly the ones these files create, and that a deal weighs here what
-- services/forecast.py says it weighs.
--
-- A deal's group: org_id, owner_id, stage_id, status, expected_month, closed_month. What it adds to
-- its group (or takes away, with -1): deals, value, weighted (value x probability / 100 rounded to
-- the cent: the deal's own probability, else its stage's, else 0; won 100 %, lost 0), won_days and
-- won_timed (the days from creation to winning, for the average). Live (not trashed) deals only.

ALTER TABLE deal_tallies ENABLE ROW LEVEL SECURITY;
ALTER TABLE deal_tallies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON deal_tallies
    USING (coalesce(current_setting('app.current_org', true), '') = ''
           OR org_id = nullif(current_setting('app.current_org', true), '')::uuid)
    WITH CHECK (coalesce(current_setting('app.current_org', true), '') = ''
                OR org_id = nullif(current_setting('app.current_org', true), '')::uuid);

ALTER TABLE activity_tallies ENABLE ROW LEVEL SECURITY;
ALTER TABLE activity_tallies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON activity_tallies
    USING (coalesce(current_setting('app.current_org', true), '') = ''
           OR org_id = nullif(current_setting('app.current_org', true), '')::uuid)
    WITH CHECK (coalesce(current_setting('app.current_org', true), '') = ''
                OR org_id = nullif(current_setting('app.current_org', true), '')::uuid);

-- Statement-level, over the transition tables: a bulk statement appends one row per group it
-- changed, not one per deal; groups whose sums did not move (a rename, a reorder) append nothing.
-- A deal weighs itself with its stage's probability as this transaction sees it, so the stages are
-- held FOR SHARE: a concurrent probability change (deal_tallies_rebase_stage) waits, and the other
-- way round, instead of rebasing without this deal.
CREATE FUNCTION deal_tallies_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM 1 FROM pipeline_stages WHERE id IN (SELECT stage_id FROM new_rows) ORDER BY id FOR SHARE;
        INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                                  deals, value, weighted, won_days, won_timed)
        SELECT org_id, owner_id, stage_id, status, expected_month, closed_month,
               sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
        FROM (
            SELECT d.org_id, d.owner_id, d.stage_id, d.status,
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
        GROUP BY org_id, owner_id, stage_id, status, expected_month, closed_month
        HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM 1 FROM pipeline_stages WHERE id IN (SELECT stage_id FROM old_rows UNION SELECT stage_id FROM new_rows) ORDER BY id FOR SHARE;
        INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                                  deals, value, weighted, won_days, won_timed)
        SELECT org_id, owner_id, stage_id, status, expected_month, closed_month,
               sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
        FROM (
            SELECT d.org_id, d.owner_id, d.stage_id, d.status,
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
            SELECT d.org_id, d.owner_id, d.stage_id, d.status,
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
        GROUP BY org_id, owner_id, stage_id, status, expected_month, closed_month
        HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;
    ELSE
        PERFORM 1 FROM pipeline_stages WHERE id IN (SELECT stage_id FROM old_rows) ORDER BY id FOR SHARE;
        INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                                  deals, value, weighted, won_days, won_timed)
        SELECT org_id, owner_id, stage_id, status, expected_month, closed_month,
               sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
        FROM (
            SELECT d.org_id, d.owner_id, d.stage_id, d.status,
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
        GROUP BY org_id, owner_id, stage_id, status, expected_month, closed_month
        HAVING sum(deals) <> 0 OR sum(value) <> 0 OR sum(weighted) <> 0 OR sum(won_days) <> 0 OR sum(won_timed) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deal_tallies_insert AFTER INSERT ON deals
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deal_tallies_count();
CREATE TRIGGER deal_tallies_update AFTER UPDATE ON deals
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deal_tallies_count();
CREATE TRIGGER deal_tallies_delete AFTER DELETE ON deals
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION deal_tallies_count();

-- An activity's group: org_id, owner_id, status, type; it adds one to it (or takes one away).
CREATE FUNCTION activity_tallies_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO activity_tallies (org_id, owner_id, status, type, activities)
        SELECT org_id, owner_id, status, type, sum(activities)
        FROM (
            SELECT org_id, owner_id, status, type, 1 AS activities FROM new_rows WHERE deleted_at IS NULL
        ) AS changed
        GROUP BY org_id, owner_id, status, type
        HAVING sum(activities) <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO activity_tallies (org_id, owner_id, status, type, activities)
        SELECT org_id, owner_id, status, type, sum(activities)
        FROM (
            SELECT org_id, owner_id, status, type, -1 AS activities FROM old_rows WHERE deleted_at IS NULL
            UNION ALL
            SELECT org_id, owner_id, status, type, 1 AS activities FROM new_rows WHERE deleted_at IS NULL
        ) AS changed
        GROUP BY org_id, owner_id, status, type
        HAVING sum(activities) <> 0;
    ELSE
        INSERT INTO activity_tallies (org_id, owner_id, status, type, activities)
        SELECT org_id, owner_id, status, type, sum(activities)
        FROM (
            SELECT org_id, owner_id, status, type, -1 AS activities FROM old_rows WHERE deleted_at IS NULL
        ) AS changed
        GROUP BY org_id, owner_id, status, type
        HAVING sum(activities) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER activity_tallies_insert AFTER INSERT ON activities
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION activity_tallies_count();
CREATE TRIGGER activity_tallies_update AFTER UPDATE ON activities
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION activity_tallies_count();
CREATE TRIGGER activity_tallies_delete AFTER DELETE ON activities
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION activity_tallies_count();

-- A stage's probability weighs its open deals that have none of their own: changing it, or deleting
-- the stage (which leaves them at 0 %), appends the difference for those deals.
CREATE FUNCTION deal_tallies_rebase_stage() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE new_percent integer := 0;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        new_percent := NEW.probability;
    END IF;
    INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                              deals, value, weighted, won_days, won_timed)
    SELECT org_id, owner_id, stage_id, status, expected_month, closed_month, 0, 0, sum(delta), 0, 0
    FROM (
        SELECT d.org_id, d.owner_id, d.stage_id, d.status,
               date_trunc('month', d.expected_close_date::timestamp)::date AS expected_month,
               CASE WHEN d.status IN ('won', 'lost') THEN date_trunc('month', d.closed_at AT TIME ZONE 'UTC')::date END AS closed_month,
               CAST(d.value * new_percent / 100 AS numeric(16, 2)) - CAST(d.value * OLD.probability / 100 AS numeric(16, 2)) AS delta
        FROM deals d
        WHERE d.stage_id = OLD.id AND d.deleted_at IS NULL AND d.status = 'open' AND d.probability IS NULL
    ) AS rebased
    GROUP BY org_id, owner_id, stage_id, status, expected_month, closed_month
    HAVING sum(delta) <> 0;
    RETURN OLD;  -- a BEFORE DELETE trigger returning NULL would cancel the delete
END $$;

CREATE TRIGGER deal_tallies_stage_probability AFTER UPDATE OF probability ON pipeline_stages
    FOR EACH ROW WHEN (OLD.probability IS DISTINCT FROM NEW.probability) EXECUTE FUNCTION deal_tallies_rebase_stage();
-- BEFORE: the stage's deals still point at it (the delete then sets their stage to NULL).
CREATE TRIGGER deal_tallies_stage_delete BEFORE DELETE ON pipeline_stages
    FOR EACH ROW EXECUTE FUNCTION deal_tallies_rebase_stage();

-- Today's totals, one row per group, already compacted (services/tallies.py folds appended rows).
INSERT INTO deal_tallies (org_id, owner_id, stage_id, status, expected_month, closed_month,
                          deals, value, weighted, won_days, won_timed)
SELECT org_id, owner_id, stage_id, status, expected_month, closed_month,
       sum(deals), sum(value), sum(weighted), sum(won_days), sum(won_timed)
FROM (
    SELECT d.org_id, d.owner_id, d.stage_id, d.status,
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

ANALYZE activities;
