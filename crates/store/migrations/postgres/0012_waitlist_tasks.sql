-- The waitlist watch's tasks for the intake team (docs/matching.md §6):
-- two new task kinds, and a closing note for tasks closed by hand.
ALTER TABLE clinician_tasks DROP CONSTRAINT IF EXISTS clinician_tasks_kind_check;
ALTER TABLE clinician_tasks ADD CONSTRAINT clinician_tasks_kind_check
    CHECK (kind IN ('risk_review','waitlist_risk','waitlist_deterioration'));
-- Who closed a task by hand, and their note (sealed: vault column).
ALTER TABLE clinician_tasks ADD COLUMN closed_by UUID REFERENCES users(id);
ALTER TABLE clinician_tasks ADD COLUMN closing_note TEXT;
ALTER TABLE clinician_tasks ADD CONSTRAINT clinician_tasks_closure_check
    CHECK ((closed_by IS NULL) = (closing_note IS NULL) AND (closed_by IS NULL OR completed_at IS NOT NULL));
-- An intake-team risk task names the risk flag it is about.
ALTER TABLE clinician_tasks ADD CONSTRAINT clinician_tasks_waitlist_risk_flag_check
    CHECK (kind <> 'waitlist_risk' OR risk_flag_id IS NOT NULL);
-- One intake-team task per risk flag (each new risk answer of a waiting client is
-- a new task, however often the watch runs; a closed one is not reopened for the
-- same flag) and one deterioration task per waiting episode.
CREATE UNIQUE INDEX clinician_tasks_waitlist_risk_once ON clinician_tasks(practice_id, risk_flag_id)
    WHERE kind = 'waitlist_risk';
CREATE UNIQUE INDEX clinician_tasks_waitlist_deterioration_once ON clinician_tasks(practice_id, episode_id)
    WHERE kind = 'waitlist_deterioration';
