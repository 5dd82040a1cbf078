-- Migration 0012_search_words on PostgreSQL, after it created search_words and its indexes: the
-- table's tenant policy, the triggers that keep each organisation's vocabulary of searched words,
-- and today's words. Executed statement by statement by migrations/versions/0012_search_words.py
-- (what the vocabulary is for: its docstring). Frozen like that migration: a change is a new
-- migration with its own file. tests/test_database_sql.py checks that the schema's functions and
-- triggers are exactly the ones these files create, and that each table's searched columns here are
-- the columns the app's searches match.
--
-- A word: a run of letters, apostrophes (' and ’) and hyphens, and each hyphenated part on its own
-- ("o'brien-hale", "o'brien", "hale"), trimmed of apostrophes and hyphens, 3-50 characters, lower
-- case: the lower() of the search keys, so every word is a substring of a search key.
--
-- Per searched table:
-- - <table>_search_words_add, per INSERT statement over the transition table: add the rows' words
--   the organisation does not have yet;
-- - <table>_search_words_change, per row for an UPDATE of a searched column (a board move, a bulk
--   status change or a soft delete costs nothing): add the new words, drop the old ones no row
--   contains any more; per statement for a DELETE (a purge; a soft delete keeps the words, the
--   record can come back): drop the deleted rows' words no remaining row contains.
-- "Contains" is one trigram index probe per search key (ILIKE on the indexed expression). Expecting
-- a few matches, the planner would take an EXISTS that scans for one that stops early, and a word
-- being dropped is usually in no other row, so such a scan reads every row of the organisation: the
-- change functions allow bitmap scans only, planned with the word.

ALTER TABLE search_words ENABLE ROW LEVEL SECURITY;
ALTER TABLE search_words FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON search_words
    USING (coalesce(current_setting('app.current_org', true), '') = ''
           OR org_id = nullif(current_setting('app.current_org', true), '')::uuid)
    WITH CHECK (coalesce(current_setting('app.current_org', true), '') = ''
                OR org_id = nullif(current_setting('app.current_org', true), '')::uuid);

-- contacts: first_name, last_name, email.
CREATE FUNCTION contacts_search_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_words (org_id, word)
    SELECT org_id, word
    FROM (
        SELECT DISTINCT r.org_id, w.word
        FROM new_rows r
        CROSS JOIN LATERAL (
            SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’-]+') AS token
            UNION
            SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’]+') AS token
        ) w
        WHERE length(w.word) BETWEEN 3 AND 50
    ) n
    WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word);
    RETURN NULL;
END $$;

CREATE FUNCTION contacts_search_words_change() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_indexscan = off SET enable_indexonlyscan = off
SET plan_cache_mode = force_custom_plan AS $$
DECLARE gone record;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO search_words (org_id, word)
        SELECT org_id, word
        FROM (
            SELECT DISTINCT r.org_id, w.word
            FROM (SELECT NEW.org_id AS org_id, NEW.first_name AS first_name, NEW.last_name AS last_name, NEW.email AS email) r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        ) n
        WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word);
        FOR gone IN
            SELECT DISTINCT r.org_id, w.word
            FROM (SELECT OLD.org_id AS org_id, OLD.first_name AS first_name, OLD.last_name AS last_name, OLD.email AS email) r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        LOOP
            IF NOT (
                EXISTS (SELECT 1 FROM contacts x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM leads x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'
                    OR lower(x.company_name) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM companies x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'
                    OR lower(x.industry) ILIKE '%' || gone.word || '%'
                    OR lower(x.city) ILIKE '%' || gone.word || '%'
                    OR lower(x.website) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM deals x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'))
            ) THEN
                DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word;
            END IF;
        END LOOP;
    ELSE
        FOR gone IN
            SELECT DISTINCT r.org_id, w.word
            FROM old_rows r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        LOOP
            IF NOT (
                EXISTS (SELECT 1 FROM contacts x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM leads x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'
                    OR lower(x.company_name) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM companies x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'
                    OR lower(x.industry) ILIKE '%' || gone.word || '%'
                    OR lower(x.city) ILIKE '%' || gone.word || '%'
                    OR lower(x.website) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM deals x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'))
            ) THEN
                DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER contacts_search_words_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION contacts_search_words_add();
CREATE TRIGGER contacts_search_words_update AFTER UPDATE OF first_name, last_name, email ON contacts
    FOR EACH ROW WHEN (OLD.first_name IS DISTINCT FROM NEW.first_name OR OLD.last_name IS DISTINCT FROM NEW.last_name OR OLD.email IS DISTINCT FROM NEW.email) EXECUTE FUNCTION contacts_search_words_change();
CREATE TRIGGER contacts_search_words_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION contacts_search_words_change();

-- leads: first_name, last_name, email, company_name.
CREATE FUNCTION leads_search_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_words (org_id, word)
    SELECT org_id, word
    FROM (
        SELECT DISTINCT r.org_id, w.word
        FROM new_rows r
        CROSS JOIN LATERAL (
            SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’-]+') AS token
            UNION
            SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’]+') AS token
        ) w
        WHERE length(w.word) BETWEEN 3 AND 50
    ) n
    WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word);
    RETURN NULL;
END $$;

CREATE FUNCTION leads_search_words_change() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_indexscan = off SET enable_indexonlyscan = off
SET plan_cache_mode = force_custom_plan AS $$
DECLARE gone record;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO search_words (org_id, word)
        SELECT org_id, word
        FROM (
            SELECT DISTINCT r.org_id, w.word
            FROM (SELECT NEW.org_id AS org_id, NEW.first_name AS first_name, NEW.last_name AS last_name, NEW.email AS email, NEW.company_name AS company_name) r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        ) n
        WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word);
        FOR gone IN
            SELECT DISTINCT r.org_id, w.word
            FROM (SELECT OLD.org_id AS org_id, OLD.first_name AS first_name, OLD.last_name AS last_name, OLD.email AS email, OLD.company_name AS company_name) r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        LOOP
            IF NOT (
                EXISTS (SELECT 1 FROM contacts x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM leads x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'
                    OR lower(x.company_name) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM companies x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'
                    OR lower(x.industry) ILIKE '%' || gone.word || '%'
                    OR lower(x.city) ILIKE '%' || gone.word || '%'
                    OR lower(x.website) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM deals x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'))
            ) THEN
                DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word;
            END IF;
        END LOOP;
    ELSE
        FOR gone IN
            SELECT DISTINCT r.org_id, w.word
            FROM old_rows r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        LOOP
            IF NOT (
                EXISTS (SELECT 1 FROM contacts x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM leads x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'
                    OR lower(x.company_name) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM companies x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'
                    OR lower(x.industry) ILIKE '%' || gone.word || '%'
                    OR lower(x.city) ILIKE '%' || gone.word || '%'
                    OR lower(x.website) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM deals x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'))
            ) THEN
                DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER leads_search_words_insert AFTER INSERT ON leads
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION leads_search_words_add();
CREATE TRIGGER leads_search_words_update AFTER UPDATE OF first_name, last_name, email, company_name ON leads
    FOR EACH ROW WHEN (OLD.first_name IS DISTINCT FROM NEW.first_name OR OLD.last_name IS DISTINCT FROM NEW.last_name OR OLD.email IS DISTINCT FROM NEW.email OR OLD.company_name IS DISTINCT FROM NEW.company_name) EXECUTE FUNCTION leads_search_words_change();
CREATE TRIGGER leads_search_words_delete AFTER DELETE ON leads
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION leads_search_words_change();

-- companies: name, industry, city, website.
CREATE FUNCTION companies_search_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_words (org_id, word)
    SELECT org_id, word
    FROM (
        SELECT DISTINCT r.org_id, w.word
        FROM new_rows r
        CROSS JOIN LATERAL (
            SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’-]+') AS token
            UNION
            SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’]+') AS token
        ) w
        WHERE length(w.word) BETWEEN 3 AND 50
    ) n
    WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word);
    RETURN NULL;
END $$;

CREATE FUNCTION companies_search_words_change() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_indexscan = off SET enable_indexonlyscan = off
SET plan_cache_mode = force_custom_plan AS $$
DECLARE gone record;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO search_words (org_id, word)
        SELECT org_id, word
        FROM (
            SELECT DISTINCT r.org_id, w.word
            FROM (SELECT NEW.org_id AS org_id, NEW.name AS name, NEW.industry AS industry, NEW.city AS city, NEW.website AS website) r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        ) n
        WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word);
        FOR gone IN
            SELECT DISTINCT r.org_id, w.word
            FROM (SELECT OLD.org_id AS org_id, OLD.name AS name, OLD.industry AS industry, OLD.city AS city, OLD.website AS website) r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        LOOP
            IF NOT (
                EXISTS (SELECT 1 FROM contacts x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM leads x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'
                    OR lower(x.company_name) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM companies x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'
                    OR lower(x.industry) ILIKE '%' || gone.word || '%'
                    OR lower(x.city) ILIKE '%' || gone.word || '%'
                    OR lower(x.website) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM deals x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'))
            ) THEN
                DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word;
            END IF;
        END LOOP;
    ELSE
        FOR gone IN
            SELECT DISTINCT r.org_id, w.word
            FROM old_rows r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        LOOP
            IF NOT (
                EXISTS (SELECT 1 FROM contacts x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM leads x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'
                    OR lower(x.company_name) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM companies x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'
                    OR lower(x.industry) ILIKE '%' || gone.word || '%'
                    OR lower(x.city) ILIKE '%' || gone.word || '%'
                    OR lower(x.website) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM deals x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'))
            ) THEN
                DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER companies_search_words_insert AFTER INSERT ON companies
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION companies_search_words_add();
CREATE TRIGGER companies_search_words_update AFTER UPDATE OF name, industry, city, website ON companies
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.industry IS DISTINCT FROM NEW.industry OR OLD.city IS DISTINCT FROM NEW.city OR OLD.website IS DISTINCT FROM NEW.website) EXECUTE FUNCTION companies_search_words_change();
CREATE TRIGGER companies_search_words_delete AFTER DELETE ON companies
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION companies_search_words_change();

-- deals: name.
CREATE FUNCTION deals_search_words_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_words (org_id, word)
    SELECT org_id, word
    FROM (
        SELECT DISTINCT r.org_id, w.word
        FROM new_rows r
        CROSS JOIN LATERAL (
            SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’-]+') AS token
            UNION
            SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’]+') AS token
        ) w
        WHERE length(w.word) BETWEEN 3 AND 50
    ) n
    WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word);
    RETURN NULL;
END $$;

CREATE FUNCTION deals_search_words_change() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_indexscan = off SET enable_indexonlyscan = off
SET plan_cache_mode = force_custom_plan AS $$
DECLARE gone record;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO search_words (org_id, word)
        SELECT org_id, word
        FROM (
            SELECT DISTINCT r.org_id, w.word
            FROM (SELECT NEW.org_id AS org_id, NEW.name AS name) r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        ) n
        WHERE NOT EXISTS (SELECT 1 FROM search_words s WHERE s.org_id = n.org_id AND s.word = n.word);
        FOR gone IN
            SELECT DISTINCT r.org_id, w.word
            FROM (SELECT OLD.org_id AS org_id, OLD.name AS name) r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        LOOP
            IF NOT (
                EXISTS (SELECT 1 FROM contacts x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM leads x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'
                    OR lower(x.company_name) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM companies x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'
                    OR lower(x.industry) ILIKE '%' || gone.word || '%'
                    OR lower(x.city) ILIKE '%' || gone.word || '%'
                    OR lower(x.website) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM deals x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'))
            ) THEN
                DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word;
            END IF;
        END LOOP;
    ELSE
        FOR gone IN
            SELECT DISTINCT r.org_id, w.word
            FROM old_rows r
            CROSS JOIN LATERAL (
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’-]+') AS token
                UNION
                SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’]+') AS token
            ) w
            WHERE length(w.word) BETWEEN 3 AND 50
        LOOP
            IF NOT (
                EXISTS (SELECT 1 FROM contacts x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM leads x WHERE x.org_id = gone.org_id AND (
                    lower((x.first_name || ' ') || x.last_name) ILIKE '%' || gone.word || '%'
                    OR lower(x.email) ILIKE '%' || gone.word || '%'
                    OR lower(x.company_name) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM companies x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'
                    OR lower(x.industry) ILIKE '%' || gone.word || '%'
                    OR lower(x.city) ILIKE '%' || gone.word || '%'
                    OR lower(x.website) ILIKE '%' || gone.word || '%'))
                OR EXISTS (SELECT 1 FROM deals x WHERE x.org_id = gone.org_id AND (
                    lower(x.name) ILIKE '%' || gone.word || '%'))
            ) THEN
                DELETE FROM search_words WHERE org_id = gone.org_id AND word = gone.word;
            END IF;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER deals_search_words_insert AFTER INSERT ON deals
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION deals_search_words_add();
CREATE TRIGGER deals_search_words_update AFTER UPDATE OF name ON deals
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION deals_search_words_change();
CREATE TRIGGER deals_search_words_delete AFTER DELETE ON deals
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION deals_search_words_change();

-- Today's words, in one INSERT (the UNION keeps one of each).
INSERT INTO search_words (org_id, word)
SELECT DISTINCT r.org_id, w.word
FROM contacts r
CROSS JOIN LATERAL (
    SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’-]+') AS token
    UNION
    SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email)), '[^[:alpha:]''’]+') AS token
) w
WHERE length(w.word) BETWEEN 3 AND 50
UNION
SELECT DISTINCT r.org_id, w.word
FROM leads r
CROSS JOIN LATERAL (
    SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’-]+') AS token
    UNION
    SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.first_name, r.last_name, r.email, r.company_name)), '[^[:alpha:]''’]+') AS token
) w
WHERE length(w.word) BETWEEN 3 AND 50
UNION
SELECT DISTINCT r.org_id, w.word
FROM companies r
CROSS JOIN LATERAL (
    SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’-]+') AS token
    UNION
    SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name, r.industry, r.city, r.website)), '[^[:alpha:]''’]+') AS token
) w
WHERE length(w.word) BETWEEN 3 AND 50
UNION
SELECT DISTINCT r.org_id, w.word
FROM deals r
CROSS JOIN LATERAL (
    SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’-]+') AS token
    UNION
    SELECT btrim(token, '''’-') AS word FROM regexp_split_to_table(lower(concat_ws(' ', r.name)), '[^[:alpha:]''’]+') AS token
) w
WHERE length(w.word) BETWEEN 3 AND 50;

ANALYZE search_words;
