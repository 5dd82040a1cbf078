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

-- The group an activity counts in while it is live, as a row (none: it counts nowhere; open and
-- completed exclude each other, so never two). The one statement of the rule above: the trigger and
-- the backfill below read it (an SQL function in FROM, which the planner inlines into a filter).
CREATE FUNCTION activity_day_group(status text, due_at timestamptz, completed_at timestamptz, deleted_at timestamptz)
RETURNS TABLE (kind text, day date) LANGUAGE sql IMMUTABLE AS $$
    SELECT * FROM (
        SELECT CASE WHEN status IN ('pending', 'in_progress') AND due_at IS NOT NULL THEN 'due'
                    WHEN status = 'completed' AND completed_at IS NOT NULL THEN 'completed' END AS kind,
               (CASE WHEN status = 'completed' THEN completed_at ELSE due_at END AT TIME ZONE 'UTC')::date AS day
    ) AS grouped
    WHERE deleted_at IS NULL AND kind IS NOT NULL
$$;

-- Statement-level, over the transition tables: a bulk statement appends one row per group it
-- changed; groups whose count did not move (a rename, a note) append nothing. Each branch names
-- only the transition tables its event has.
CREATE FUNCTION activity_day_tallies_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
        SELECT r.org_id, r.owner_id, g.kind, g.day, count(*)
        FROM new_rows AS r, activity_day_group(r.status, r.due_at, r.completed_at, r.deleted_at) AS g
        GROUP BY r.org_id, r.owner_id, g.kind, g.day;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
        SELECT r.org_id, r.owner_id, g.kind, g.day, sum(r.activities)
        FROM (
            SELECT org_id, owner_id, status, due_at, completed_at, deleted_at, -1 AS activities FROM old_rows
            UNION ALL
            SELECT org_id, owner_id, status, due_at, completed_at, deleted_at, 1 FROM new_rows
        ) AS r, activity_day_group(r.status, r.due_at, r.completed_at, r.deleted_at) AS g
        GROUP BY r.org_id, r.owner_id, g.kind, g.day
        HAVING sum(r.activities) <> 0;
    ELSE
        INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
        SELECT r.org_id, r.owner_id, g.kind, g.day, -count(*)
        FROM old_rows AS r, activity_day_group(r.status, r.due_at, r.completed_at, r.deleted_at) AS g
        GROUP BY r.org_id, r.owner_id, g.kind, g.day;
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
SELECT a.org_id, a.owner_id, g.kind, g.day, count(*), true
FROM activities AS a, activity_day_group(a.status, a.due_at, a.completed_at, a.deleted_at) AS g
GROUP BY a.org_id, a.owner_id, g.kind, g.day;

ANALYZE activity_day_tallies;
