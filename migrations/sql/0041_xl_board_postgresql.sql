-- Migration 0041_xl_board on PostgreSQL, after it created activity_day_tallies: its tenant policy,
-- the triggers that keep it, and today's totals. Executed statement by statement by
-- migrations/versions/0041_xl_board.py (why: its docstring). Frozen like that migration.
--
-- An activity counts in one group (org_id, owner_id, kind, day) while it is live: kind 'due' and the
-- UTC date of due_at while it is open (pending or in progress) with a due time; kind 'completed' and
-- the UTC date of completed_at while it is completed with a completion time. It adds one to its
-- group (or takes one away).

ALTER TABLE activity_day_tallies ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON activity_day_tallies
    USING (org_id = nullif(current_setting('app.current_org', true), '')::uuid)
    WITH CHECK (org_id = nullif(current_setting('app.current_org', true), '')::uuid);

-- Statement-level, over the transition tables: a bulk statement appends one row per group it
-- changed; groups whose count did not move (a rename, a note) append nothing.
CREATE FUNCTION activity_day_tallies_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
        SELECT org_id, owner_id, kind, day, sum(activities)
        FROM (
            SELECT org_id, owner_id, 'due' AS kind, (due_at AT TIME ZONE 'UTC')::date AS day, 1 AS activities FROM new_rows
            WHERE deleted_at IS NULL AND status IN ('pending', 'in_progress') AND due_at IS NOT NULL
            UNION ALL
            SELECT org_id, owner_id, 'completed', (completed_at AT TIME ZONE 'UTC')::date, 1 FROM new_rows
            WHERE deleted_at IS NULL AND status = 'completed' AND completed_at IS NOT NULL
        ) AS changed
        GROUP BY org_id, owner_id, kind, day
        HAVING sum(activities) <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
        SELECT org_id, owner_id, kind, day, sum(activities)
        FROM (
            SELECT org_id, owner_id, 'due' AS kind, (due_at AT TIME ZONE 'UTC')::date AS day, -1 AS activities FROM old_rows
            WHERE deleted_at IS NULL AND status IN ('pending', 'in_progress') AND due_at IS NOT NULL
            UNION ALL
            SELECT org_id, owner_id, 'completed', (completed_at AT TIME ZONE 'UTC')::date, -1 FROM old_rows
            WHERE deleted_at IS NULL AND status = 'completed' AND completed_at IS NOT NULL
            UNION ALL
            SELECT org_id, owner_id, 'due' AS kind, (due_at AT TIME ZONE 'UTC')::date AS day, 1 AS activities FROM new_rows
            WHERE deleted_at IS NULL AND status IN ('pending', 'in_progress') AND due_at IS NOT NULL
            UNION ALL
            SELECT org_id, owner_id, 'completed', (completed_at AT TIME ZONE 'UTC')::date, 1 FROM new_rows
            WHERE deleted_at IS NULL AND status = 'completed' AND completed_at IS NOT NULL
        ) AS changed
        GROUP BY org_id, owner_id, kind, day
        HAVING sum(activities) <> 0;
    ELSE
        INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
        SELECT org_id, owner_id, kind, day, sum(activities)
        FROM (
            SELECT org_id, owner_id, 'due' AS kind, (due_at AT TIME ZONE 'UTC')::date AS day, -1 AS activities FROM old_rows
            WHERE deleted_at IS NULL AND status IN ('pending', 'in_progress') AND due_at IS NOT NULL
            UNION ALL
            SELECT org_id, owner_id, 'completed', (completed_at AT TIME ZONE 'UTC')::date, -1 FROM old_rows
            WHERE deleted_at IS NULL AND status = 'completed' AND completed_at IS NOT NULL
        ) AS changed
        GROUP BY org_id, owner_id, kind, day
        HAVING sum(activities) <> 0;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER activity_day_tallies_insert AFTER INSERT ON activities
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION activity_day_tallies_count();
CREATE TRIGGER activity_day_tallies_update AFTER UPDATE ON activities
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION activity_day_tallies_count();
CREATE TRIGGER activity_day_tallies_delete AFTER DELETE ON activities
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION activity_day_tallies_count();

-- Today's totals, one row per group, already compacted (services/stats/tallies.py folds appended rows).
INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities, compacted)
SELECT org_id, owner_id, kind, day, sum(activities), true
FROM (
            SELECT org_id, owner_id, 'due' AS kind, (due_at AT TIME ZONE 'UTC')::date AS day, 1 AS activities FROM activities
            WHERE deleted_at IS NULL AND status IN ('pending', 'in_progress') AND due_at IS NOT NULL
            UNION ALL
            SELECT org_id, owner_id, 'completed', (completed_at AT TIME ZONE 'UTC')::date, 1 FROM activities
            WHERE deleted_at IS NULL AND status = 'completed' AND completed_at IS NOT NULL
) AS today
GROUP BY org_id, owner_id, kind, day;

ANALYZE activity_day_tallies;
