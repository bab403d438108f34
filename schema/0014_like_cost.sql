-- Issue 15: the searched columns hold folded text (0008) and the compiler
-- folds the value, so substring keys compare with LIKE, not ILIKE (which
-- lowercases a copy of the whole text on every row). LIKE gets the planner
-- cost 0001 gave ILIKE, for the same reason: on body_text a seq scan
-- otherwise looks cheaper than the trigram indexes.
DO $$ BEGIN
    ALTER FUNCTION textlike(text, text) COST 1000;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'decimail: not superuser, LIKE keeps its default planner cost';
END $$;
