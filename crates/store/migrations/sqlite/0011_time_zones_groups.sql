-- The client's own IANA time zone (set at intake or in their settings);
-- NULL until given, when the practice's zone is used.
ALTER TABLE clients ADD COLUMN time_zone TEXT;
