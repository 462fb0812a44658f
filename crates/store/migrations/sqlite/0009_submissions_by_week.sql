-- B3 (issue 4): file the per-episode submission index under the week of submission.
--
-- The 0001 index (practice_id, episode_id, instrument, submitted_at) puts every new
-- submission on the last page of ITS episode's range: with many active episodes, a group
-- commit dirtied about one random index page per submission (≈ 4 KiB of WAL each, written
-- again at checkpoint). Led by the week instead, new entries land in the current week's
-- range at the right edge of the index, which is a few pages wide however many episodes
-- are active. Reads of one episode walk the practice's weeks (a recursive CTE: one index
-- seek per week), see `submissions_for_episode`.
--
-- submitted_week = whole weeks since 1970-01-01T00:00Z of submitted_at
-- (tapestry_domain::submission::week_of); the store always writes it. The default only
-- keeps a row written by an older binary findable (in week 0).
ALTER TABLE submissions ADD COLUMN submitted_week INTEGER NOT NULL DEFAULT 0;
UPDATE submissions SET submitted_week = CAST(strftime('%s', submitted_at) AS INTEGER) / 604800;
DROP INDEX submissions_episode;
CREATE INDEX submissions_week_episode ON submissions(practice_id, submitted_week, episode_id, instrument, submitted_at);
