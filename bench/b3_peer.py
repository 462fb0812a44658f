#!/usr/bin/env python3
"""B3 peer: Python sqlite3 doing Tapestry's durable ingest with the same schema and pragmas.

Applies Tapestry's own SQLite migrations to a fresh database, creates the same synthetic
practice/clients/episodes, then ingests the same synthetic PHQ-9/GAD-7 stream as
`tapestry bench ingest` (see `synthetic_answers` in crates/app/src/ingest.rs) with the same
statements per transaction: BEGIN IMMEDIATE, read the episodes, read their measure state
and the practice's curves, validate and score in Python, reliable change from the baseline,
rational not-on-track rules, risk flag + clinician task for PHQ-9 item 9 > 0, then multi-row
INSERTs of submissions, measure state (upsert), flags and tasks, COMMIT.

Subcommands (all print one JSON object on stdout):
  ingest DIR --count N --batch B --clients C --round-seconds S --synchronous full|normal
  fsync DIR --count N             raw write+os.fsync loop of a 64-byte record (hardware ceiling)
  check DB                        rows and checksums of a database, for the equal-results check
"""

import argparse
import datetime as dt
import glob
import json
import os
import sqlite3
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIGRATIONS = os.path.join(ROOT, "crates", "store", "migrations", "sqlite")

# Instrument facts used by the stream (content/instruments/{phq9,gad7}.toml).
INSTRUMENTS = {
    "phq9": {"items": 9, "max": 3, "rc": 6.0, "cutoff": 10.0, "review": 4, "version": None},
    "gad7": {"items": 7, "max": 3, "rc": 4.0, "cutoff": 10.0, "review": 4, "version": None},
}
BASE = dt.datetime(2026, 1, 5, 9, 0, 0, tzinfo=dt.timezone.utc)


def ts(d):
    return d.isoformat()


def synthetic_answers(i, clients):
    rnd = i // clients
    item = lambda k: (7 * i + 13 * k + 5 * rnd) % 4
    if i % 2 == 0:
        return "phq9", [item(k) for k in range(8)] + [1 if i % 100 == 0 else 0]
    return "gad7", [item(k) for k in range(7)]


def instrument_versions():
    for name in INSTRUMENTS:
        path = os.path.join(ROOT, "content", "instruments", name + ".toml")
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("version"):
                    INSTRUMENTS[name]["version"] = line.split("=", 1)[1].strip().strip('"')
                    break


def connect(path, synchronous):
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=%s" % ("FULL" if synchronous == "full" else "NORMAL"))
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("PRAGMA busy_timeout=10000")
    con.execute("PRAGMA cache_size=-32768")  # as crates/store/src/sqlite.rs PAGE_CACHE
    return con


def migrate(con):
    for path in sorted(glob.glob(os.path.join(MIGRATIONS, "*.sql"))):
        with open(path, encoding="utf-8") as f:
            con.executescript(f.read())


def uuid7(when):
    """Time-ordered submission id, as Tapestry's `ingest::time_ordered_id`."""
    millis = int(when.timestamp() * 1000)
    b = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    b[6] = 0x70 | (b[6] & 0x0F)
    b[8] = 0x80 | (b[8] & 0x3F)
    return bytes(b)


def rational(defn, baseline, current, session):
    th = defn["rc"]
    improvement = baseline - current
    if -improvement >= th:
        return "deteriorated", True, "reliable deterioration since intake"
    if current < defn["cutoff"] - 0.5:
        return "functional_range", False, "below the caseness cut-off"
    if improvement >= th:
        return "on_track", False, "reliable improvement since intake"
    if session >= defn["review"]:
        return "not_on_track", True, "no reliable improvement by session %d" % session
    return "too_early", False, "session %d: review at session %d" % (session, defn["review"])


def ingest(args):
    instrument_versions()
    os.makedirs(args.dir, exist_ok=True)
    db = os.path.join(args.dir, "tapestry.db")
    con = connect(db, args.synchronous)
    migrate(con)
    practice = uuid.uuid4().bytes
    con.execute("BEGIN")
    con.execute(
        "INSERT INTO practices (id, practice_id, name, time_zone, created_at) VALUES (?,?,?,?,?)",
        (practice, practice, "Ingest benchmark (peer)", "UTC", ts(BASE)),
    )
    episodes = []
    for n in range(args.clients):
        client, episode = uuid.uuid4().bytes, uuid.uuid4().bytes
        con.execute(
            "INSERT INTO clients (id, practice_id, user_id, display_name, date_of_birth, jurisdiction, created_at) VALUES (?,?,?,?,?,?,?)",
            (client, practice, None, "Synthetic client %d" % n, None, None, ts(BASE)),
        )
        con.execute(
            "INSERT INTO episodes (id, practice_id, client_id, status, primary_clinician, opened_at, status_changed_at) VALUES (?,?,?,?,?,?,?)",
            (episode, practice, client, "referral", None, ts(BASE), ts(BASE)),
        )
        episodes.append((client, episode))
    con.execute("COMMIT")

    latencies = []
    flags_total = 0
    start = time.perf_counter()
    i = 0
    while i < args.count:
        n = min(args.batch, args.count - i)
        t0 = time.perf_counter()
        flags_total += commit_batch(con, practice, episodes, args.clients, args.round_seconds, range(i, i + n))
        latencies.append(time.perf_counter() - t0)
        i += n
    elapsed = time.perf_counter() - start
    con.close()
    latencies.sort()
    pick = lambda q: latencies[round((len(latencies) - 1) * q)] * 1e6 if latencies else 0.0
    print(json.dumps({
        "bench": "ingest_peer_python",
        "mode": "single" if args.batch == 1 else "group%d" % args.batch,
        "synchronous": args.synchronous,
        "submissions": args.count,
        "seconds": round(elapsed, 3),
        "submissions_per_s": round(args.count / elapsed),
        "p50_commit_us": round(pick(0.5)),
        "p99_commit_us": round(pick(0.99)),
        "risk_flags": flags_total,
        "sqlite": sqlite3.sqlite_version,
    }))


def placeholders(rows, cols):
    one = "(" + ",".join("?" * cols) + ")"
    return ",".join([one] * rows)


def synthetic_time(i, clients, round_seconds):
    """As `synthetic_time` in crates/app/src/ingest.rs: round i // clients, i % clients ms."""
    return BASE + dt.timedelta(seconds=(i // clients) * round_seconds, milliseconds=i % clients)


def commit_batch(con, practice, episodes, clients, round_seconds, indices):
    reqs = []
    for i in indices:
        instrument, values = synthetic_answers(i, clients)
        client, episode = episodes[i % clients]
        reqs.append((i, instrument, values, client, episode))
    ep_ids = sorted({r[4] for r in reqs})
    con.execute("BEGIN IMMEDIATE")
    # Same statements as the Rust store: read the episodes, their state and the curves.
    known, states = {}, {}
    for r in con.execute(
        "SELECT e.id AS e_id, e.client_id AS e_client_id, e.primary_clinician AS e_primary_clinician, "
        "m.practice_id, m.episode_id, m.instrument, m.baseline, m.latest, m.sessions, m.track, m.updated_at "
        "FROM episodes e LEFT JOIN episode_measures m ON m.practice_id = e.practice_id AND m.episode_id = e.id "
        "WHERE e.practice_id = ? AND e.id IN (%s) ORDER BY e.id" % ",".join("?" * len(ep_ids)),
        [practice] + ep_ids,
    ):
        known[r[0]] = (r[1], r[2])
        if r[5] is not None:
            states[(r[4], r[5])] = {"baseline": r[6], "latest": r[7], "sessions": r[8]}
    instruments = sorted({r[1] for r in reqs})
    con.execute(
        "SELECT * FROM recovery_curves WHERE practice_id = ? AND instrument IN (%s) ORDER BY version DESC"
        % ",".join("?" * len(instruments)),
        [practice] + instruments,
    ).fetchall()
    subs, measures, flags, tasks = [], {}, [], []
    for i, instrument, values, client, episode in reqs:
        defn = INSTRUMENTS[instrument]
        if episode not in known or known[episode][0] != client:
            continue
        # Validate and score.
        if len(values) != defn["items"] or any(not (0 <= v <= defn["max"]) for v in values):
            continue
        total = float(sum(values))
        when = synthetic_time(i, clients, round_seconds)
        at = ts(when)
        prior = states.get((episode, instrument))
        session = (prior["sessions"] if prior else 0) + 1
        baseline = prior["baseline"] if prior and prior["baseline"] is not None else total
        status, not_on_track, reason = rational(defn, baseline, total, session)
        track = json.dumps({"session": session, "status": status, "not_on_track": not_on_track,
                            "reason": reason, "curve_version": None, "curve_n": None, "boundary": None},
                           separators=(",", ":"))
        sub_id = uuid7(when)
        week = int(when.timestamp()) // 604800  # migration 0009: submitted_week
        subs.append((sub_id, practice, client, episode, instrument, defn["version"],
                     json.dumps(values, separators=(",", ":")), total, session, at, None, week))
        state = {"baseline": baseline, "latest": total, "sessions": session}
        states[(episode, instrument)] = state
        measures[(episode, instrument)] = (practice, episode, instrument, baseline, total, session,
                                           status, not_on_track, track, at)
        if instrument == "phq9" and values[8] >= 1:
            rule, due = ("R2", 8) if values[8] >= 2 else ("R1", 1)
            signal = json.dumps({"source": {"kind": "critical_item", "instrument": "phq9", "item": 9, "value": values[8]},
                                 "level": None, "colour": "amber", "rule": rule, "published_rule": True,
                                 "action": "Structured risk inquiry before the session ends; safety plan if ideation is confirmed.",
                                 "due": "before_session_ends"}, separators=(",", ":"))
            flag_id = uuid.uuid4().bytes
            flags.append((flag_id, practice, client, episode, sub_id, "phq9", 9, values[8], None, "amber", rule, signal, at))
            tasks.append((uuid.uuid4().bytes, practice, client, episode, "risk_review", flag_id, known[episode][1],
                          "Risk review: phq9 item 9 answered %d" % values[8],
                          "Structured risk inquiry before the session ends; safety plan if ideation is confirmed. (rule %s)" % rule,
                          "amber", ts(when + dt.timedelta(hours=due)), at, None))
    for chunk in chunks(subs, 200):
        con.execute(
            "INSERT INTO submissions (id, practice_id, client_id, episode_id, instrument, instrument_version, answers, total, session, submitted_at, idempotency_key, submitted_week) VALUES "
            + placeholders(len(chunk), 12), [v for row in chunk for v in row])
    for chunk in chunks(list(measures.values()), 200):
        con.execute(
            "INSERT INTO episode_measures (practice_id, episode_id, instrument, baseline, latest, sessions, track_status, not_on_track, track, updated_at) VALUES "
            + placeholders(len(chunk), 10)
            + " ON CONFLICT (practice_id, episode_id, instrument) DO UPDATE SET baseline = excluded.baseline, latest = excluded.latest, sessions = excluded.sessions, track_status = excluded.track_status, not_on_track = excluded.not_on_track, track = excluded.track, updated_at = excluded.updated_at",
            [v for row in chunk for v in row])
    for chunk in chunks(flags, 200):
        con.execute(
            "INSERT INTO risk_flags (id, practice_id, client_id, episode_id, submission_id, instrument, item, value, level, colour, rule, signal, raised_at) VALUES "
            + placeholders(len(chunk), 13), [v for row in chunk for v in row])
    for chunk in chunks(tasks, 200):
        con.execute(
            "INSERT INTO clinician_tasks (id, practice_id, client_id, episode_id, kind, risk_flag_id, assignee, title, detail, colour, due_at, created_at, completed_at) VALUES "
            + placeholders(len(chunk), 13), [v for row in chunk for v in row])
    con.execute("COMMIT")
    return len(flags)


def chunks(rows, n):
    for k in range(0, len(rows), n):
        yield rows[k:k + n]


def fsync_loop(args):
    os.makedirs(args.dir, exist_ok=True)
    path = os.path.join(args.dir, "fsync-probe.bin")
    record = b"x" * 64
    lat = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        start = time.perf_counter()
        for _ in range(args.count):
            t0 = time.perf_counter()
            os.write(fd, record)
            os.fsync(fd)
            lat.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        os.unlink(path)
    lat.sort()
    print(json.dumps({
        "bench": "fsync_loop",
        "writes": args.count,
        "seconds": round(elapsed, 3),
        "writes_per_s": round(args.count / elapsed),
        "p50_us": round(lat[len(lat) // 2] * 1e6),
        "p99_us": round(lat[round((len(lat) - 1) * 0.99)] * 1e6),
    }))


def check(args):
    con = sqlite3.connect(args.db)
    q = lambda sql: con.execute(sql).fetchone()[0]
    print(json.dumps({
        "submissions": q("SELECT COUNT(*) FROM submissions"),
        "totals_checksum": q("SELECT COALESCE(SUM(total), 0) FROM submissions"),
        "sessions_checksum": q("SELECT COALESCE(SUM(session), 0) FROM submissions"),
        "weeks_checksum": q("SELECT COALESCE(SUM(submitted_week), 0) FROM submissions"),
        "episode_measures": q("SELECT COUNT(*) FROM episode_measures"),
        "not_on_track": q("SELECT COUNT(*) FROM episode_measures WHERE not_on_track"),
        "risk_flags": q("SELECT COUNT(*) FROM risk_flags"),
        "clinician_tasks": q("SELECT COUNT(*) FROM clinician_tasks"),
    }, sort_keys=True))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ingest")
    a.add_argument("dir")
    a.add_argument("--count", type=int, default=20000)
    a.add_argument("--batch", type=int, default=1)
    a.add_argument("--clients", type=int, default=100)
    a.add_argument("--round-seconds", type=int, default=604800)
    a.add_argument("--synchronous", choices=["full", "normal"], default="full")
    f = sub.add_parser("fsync")
    f.add_argument("dir")
    f.add_argument("--count", type=int, default=5000)
    c = sub.add_parser("check")
    c.add_argument("db")
    args = p.parse_args()
    if getattr(args, "count", 1) < 1 or getattr(args, "batch", 1) < 1 or getattr(args, "clients", 1) < 1:
        sys.exit("--count, --batch and --clients must be at least 1")
    {"ingest": ingest, "fsync": fsync_loop, "check": check}[args.cmd](args)


if __name__ == "__main__":
    main()
