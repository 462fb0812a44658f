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
-- One waitlist task per waiting episode and kind, however often the watch runs.
CREATE UNIQUE INDEX clinician_tasks_waitlist_once ON clinician_tasks(practice_id, episode_id, kind)
    WHERE kind IN ('waitlist_risk','waitlist_deterioration');
