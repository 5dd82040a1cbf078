-- Migration 0041_xl_board on SQLite, after it created activity_day_tallies: the triggers that keep
-- it, and today's totals. Executed statement by statement by migrations/versions/0041_xl_board.py
-- (why: its docstring). Frozen like that migration.
--
-- The same groups as 0041_xl_board_postgresql.sql (day: the date of the UTC time, stored naive).
-- Row-level triggers; an update that changed no counted column skips them (the WHEN).

CREATE TRIGGER activity_day_tallies_insert AFTER INSERT ON activities
BEGIN
    INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
    SELECT NEW.org_id, NEW.owner_id, 'due', date(NEW.due_at), 1
    WHERE NEW.deleted_at IS NULL AND NEW.status IN ('pending', 'in_progress') AND NEW.due_at IS NOT NULL;
    INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
    SELECT NEW.org_id, NEW.owner_id, 'completed', date(NEW.completed_at), 1
    WHERE NEW.deleted_at IS NULL AND NEW.status = 'completed' AND NEW.completed_at IS NOT NULL;
END;

CREATE TRIGGER activity_day_tallies_update AFTER UPDATE ON activities
WHEN OLD.org_id IS NOT NEW.org_id OR OLD.owner_id IS NOT NEW.owner_id OR OLD.status IS NOT NEW.status
    OR OLD.due_at IS NOT NEW.due_at OR OLD.completed_at IS NOT NEW.completed_at OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN
    INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
    SELECT OLD.org_id, OLD.owner_id, 'due', date(OLD.due_at), -1
    WHERE OLD.deleted_at IS NULL AND OLD.status IN ('pending', 'in_progress') AND OLD.due_at IS NOT NULL;
    INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
    SELECT OLD.org_id, OLD.owner_id, 'completed', date(OLD.completed_at), -1
    WHERE OLD.deleted_at IS NULL AND OLD.status = 'completed' AND OLD.completed_at IS NOT NULL;
    INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
    SELECT NEW.org_id, NEW.owner_id, 'due', date(NEW.due_at), 1
    WHERE NEW.deleted_at IS NULL AND NEW.status IN ('pending', 'in_progress') AND NEW.due_at IS NOT NULL;
    INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
    SELECT NEW.org_id, NEW.owner_id, 'completed', date(NEW.completed_at), 1
    WHERE NEW.deleted_at IS NULL AND NEW.status = 'completed' AND NEW.completed_at IS NOT NULL;
END;

CREATE TRIGGER activity_day_tallies_delete AFTER DELETE ON activities
BEGIN
    INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
    SELECT OLD.org_id, OLD.owner_id, 'due', date(OLD.due_at), -1
    WHERE OLD.deleted_at IS NULL AND OLD.status IN ('pending', 'in_progress') AND OLD.due_at IS NOT NULL;
    INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities)
    SELECT OLD.org_id, OLD.owner_id, 'completed', date(OLD.completed_at), -1
    WHERE OLD.deleted_at IS NULL AND OLD.status = 'completed' AND OLD.completed_at IS NOT NULL;
END;

-- Today's totals, one row per group, already compacted (services/stats/tallies.py folds appended rows).
INSERT INTO activity_day_tallies (org_id, owner_id, kind, day, activities, compacted)
SELECT org_id, owner_id, kind, day, sum(activities), 1
FROM (
    SELECT org_id, owner_id, 'due' AS kind, date(due_at) AS day, 1 AS activities FROM activities
    WHERE deleted_at IS NULL AND status IN ('pending', 'in_progress') AND due_at IS NOT NULL
    UNION ALL
    SELECT org_id, owner_id, 'completed', date(completed_at), 1 FROM activities
    WHERE deleted_at IS NULL AND status = 'completed' AND completed_at IS NOT NULL
) AS today
GROUP BY org_id, owner_id, kind, day;
