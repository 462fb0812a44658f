-- B3 (issue 4): file the per-episode submission index under the week of submission.
-- See the SQLite migration of the same number for the reasoning.
--
-- submitted_week = whole weeks since 1970-01-01T00:00Z of submitted_at
-- (tapestry_domain::submission::week_of); the store always writes it.
ALTER TABLE submissions ADD COLUMN submitted_week BIGINT NOT NULL DEFAULT 0;
UPDATE submissions SET submitted_week = floor(extract(epoch FROM submitted_at) / 604800)::bigint;
DROP INDEX submissions_episode;
CREATE INDEX submissions_week_episode ON submissions(practice_id, submitted_week, episode_id, instrument, submitted_at);
