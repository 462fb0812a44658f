//! The tamper-evident audit log (security goals G13, G14).
//!
//! Every read, write, export and denial of clinical data appends one
//! [`AuditEvent`]. Each event carries the SHA-256 hash of the previous one
//! (`prev_hash`) and its own `hash = SHA-256(prev_hash ‖ canonical bytes)`,
//! so editing, deleting, inserting or reordering any stored row breaks the
//! chain at that row; [`verify`] recomputes it and names the first broken
//! entry. Events hold ids only, never clinical content (G12).
//!
//! A chain alone cannot show that its newest rows were cut off or that the
//! whole tail was rewritten consistently; signed [`Checkpoint`]s exported off
//! the database (every 15 min and on shutdown) close that gap:
//! [`verify_with_checkpoints`] checks that each checkpointed entry is still
//! there with the same hash.
//!
//! The database side (append-only table: no UPDATE/DELETE privilege on
//! PostgreSQL, aborting triggers on SQLite; one writer at a time so `seq` has
//! no gaps) is the store adapters' job.

use chrono::{DateTime, Utc};
use data_encoding::HEXLOWER;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use tapestry_domain::ids::{PracticeId, UserId};
use uuid::Uuid;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];
const EVENT_DOMAIN: &[u8] = b"tapestry-audit-v1";
const CHECKPOINT_DOMAIN: &[u8] = b"tapestry-audit-checkpoint-v1";

/// Whether the audited request was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Allowed,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(Outcome::Allowed),
            "denied" => Some(Outcome::Denied),
            _ => None,
        }
    }
}

/// An event before it is chained (what the web layer hands the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditEvent {
    /// Who acted; `None` for anonymous requests (failed sign-in of an unknown e-mail).
    pub actor: Option<UserId>,
    /// The practice whose data was touched; `None` for platform events.
    pub practice_id: Option<PracticeId>,
    /// What kind of object, e.g. `"client"`, `"session_note"`, `"account"`.
    pub object_type: String,
    /// Which object.
    pub object_id: Option<Uuid>,
    /// The action, e.g. `tapestry_domain::access::Action::as_str()`.
    pub action: String,
    pub outcome: Outcome,
    /// When (stored at microsecond precision, as both databases keep it).
    pub at: DateTime<Utc>,
    /// The request's id (ties the event to logs).
    pub request_id: String,
}

/// One stored audit event.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// 1, 2, 3, … without gaps.
    pub seq: u64,
    pub actor: Option<UserId>,
    pub practice_id: Option<PracticeId>,
    pub object_type: String,
    pub object_id: Option<Uuid>,
    pub action: String,
    pub outcome: Outcome,
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

impl fmt::Debug for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditEvent")
            .field("seq", &self.seq)
            .field("actor", &self.actor)
            .field("practice_id", &self.practice_id)
            .field("object_type", &self.object_type)
            .field("object_id", &self.object_id)
            .field("action", &self.action)
            .field("outcome", &self.outcome)
            .field("at", &self.at)
            .field("request_id", &self.request_id)
            .field("prev_hash", &hex(&self.prev_hash))
            .field("hash", &hex(&self.hash))
            .finish()
    }
}

/// Lower-case hex of a hash (for TEXT columns and reports).
pub fn hex(hash: &[u8; 32]) -> String {
    HEXLOWER.encode(hash)
}

/// Parse a lower-case hex hash.
pub fn parse_hex(text: &str) -> Option<[u8; 32]> {
    HEXLOWER.decode(text.as_bytes()).ok()?.try_into().ok()
}

fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_uuid(out: &mut Vec<u8>, id: Option<Uuid>) {
    match id {
        Some(u) => {
            out.push(1);
            out.extend_from_slice(u.as_bytes());
        }
        None => out.push(0),
    }
}

impl AuditEvent {
    /// Chain `new` after `prev` (`None` for the first event).
    pub fn chain(prev: Option<&AuditEvent>, new: NewAuditEvent) -> Self {
        let (seq, prev_hash) = match prev {
            Some(p) => (p.seq.saturating_add(1), p.hash),
            None => (1, GENESIS_HASH),
        };
        let mut event = Self {
            seq,
            actor: new.actor,
            practice_id: new.practice_id,
            object_type: new.object_type,
            object_id: new.object_id,
            action: new.action,
            outcome: new.outcome,
            at: truncate_to_micros(new.at),
            request_id: new.request_id,
            prev_hash,
            hash: [0u8; 32],
        };
        event.hash = event.compute_hash();
        event
    }

    /// The canonical byte form of everything but `hash`: fixed field order,
    /// length-prefixed strings, presence-tagged optional ids, time as
    /// microseconds since the epoch. Unambiguous: no two events share it.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        put_str(&mut out, std::str::from_utf8(EVENT_DOMAIN).unwrap_or(""));
        out.extend_from_slice(&self.seq.to_be_bytes());
        put_opt_uuid(&mut out, self.actor.map(|u| u.as_uuid()));
        put_opt_uuid(&mut out, self.practice_id.map(|p| p.as_uuid()));
        put_str(&mut out, &self.object_type);
        put_opt_uuid(&mut out, self.object_id);
        put_str(&mut out, &self.action);
        put_str(&mut out, self.outcome.as_str());
        out.extend_from_slice(&self.at.timestamp_micros().to_be_bytes());
        put_str(&mut out, &self.request_id);
        out
    }

    /// SHA-256(prev_hash ‖ canonical bytes).
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.prev_hash);
        h.update(self.canonical_bytes());
        h.finalize().into()
    }
}

/// What is wrong at the first broken entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakReason {
    /// The entry's sequence number is not the next one (deleted, inserted or reordered rows).
    SequenceGap { found: u64 },
    /// The entry does not point at its predecessor's hash.
    PrevHashMismatch,
    /// The entry's content does not match its hash (edited).
    HashMismatch,
    /// The chain ends before a checkpointed entry (tail cut off).
    Truncated,
    /// A checkpointed entry has a different hash now (rewritten tail).
    CheckpointMismatch,
    /// A checkpoint's signature is wrong (forged or from another key).
    BadCheckpointSignature,
}

/// The first entry that fails verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at entry {first_bad_seq}: {reason:?}")]
pub struct ChainBreak {
    /// The sequence number expected at the first bad position.
    pub first_bad_seq: u64,
    pub reason: BreakReason,
}

/// Where verification of a (partial) chain starts: the entry before the first
/// one given. `None` means the chain starts at the genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub seq: u64,
    pub hash: [u8; 32],
}

/// Verify a whole chain from the genesis.
pub fn verify(events: &[AuditEvent]) -> Result<(), ChainBreak> {
    verify_from(None, events)
}

/// Verify a run of events that follows `anchor` (for incremental checks
/// from the last verified checkpoint).
pub fn verify_from(anchor: Option<Anchor>, events: &[AuditEvent]) -> Result<(), ChainBreak> {
    let (mut expected_seq, mut expected_prev) = match anchor {
        Some(a) => (a.seq.saturating_add(1), a.hash),
        None => (1, GENESIS_HASH),
    };
    for event in events {
        let bad = |reason| ChainBreak {
            first_bad_seq: expected_seq,
            reason,
        };
        if event.seq != expected_seq {
            return Err(bad(BreakReason::SequenceGap { found: event.seq }));
        }
        if !bool::from(event.prev_hash.ct_eq(&expected_prev)) {
            return Err(bad(BreakReason::PrevHashMismatch));
        }
        if !bool::from(event.compute_hash().ct_eq(&event.hash)) {
            return Err(bad(BreakReason::HashMismatch));
        }
        expected_prev = event.hash;
        expected_seq = expected_seq.saturating_add(1);
    }
    Ok(())
}

/// A signed statement "entry `seq` had hash `hash`", exported off the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    pub hash: [u8; 32],
    /// HMAC-SHA-256 under the audit key from the key file.
    pub mac: [u8; 32],
}

fn checkpoint_mac(key: &[u8; 32], seq: u64, hash: &[u8; 32]) -> [u8; 32] {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return [0u8; 32];
    };
    mac.update(CHECKPOINT_DOMAIN);
    mac.update(&seq.to_be_bytes());
    mac.update(hash);
    mac.finalize().into_bytes().into()
}

impl Checkpoint {
    /// Sign the latest event.
    pub fn sign(event: &AuditEvent, key: &[u8; 32]) -> Self {
        Self {
            seq: event.seq,
            hash: event.hash,
            mac: checkpoint_mac(key, event.seq, &event.hash),
        }
    }

    pub fn signature_ok(&self, key: &[u8; 32]) -> bool {
        checkpoint_mac(key, self.seq, &self.hash)
            .ct_eq(&self.mac)
            .into()
    }

    /// One line of text: `seq hash_hex mac_hex`.
    pub fn to_line(&self) -> String {
        format!("{} {} {}", self.seq, hex(&self.hash), hex(&self.mac))
    }

    pub fn parse_line(line: &str) -> Option<Self> {
        let mut parts = line.split_whitespace();
        let seq = parts.next()?.parse().ok()?;
        let hash = parse_hex(parts.next()?)?;
        let mac = parse_hex(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Self { seq, hash, mac })
    }
}

/// Verify the whole chain and every checkpoint against it. Reports the
/// earliest problem (by sequence number).
pub fn verify_with_checkpoints(
    events: &[AuditEvent],
    checkpoints: &[Checkpoint],
    key: &[u8; 32],
) -> Result<(), ChainBreak> {
    let chain = verify(events);
    let mut worst: Option<ChainBreak> = chain.err();
    let mut consider = |b: ChainBreak| {
        if worst.is_none_or(|w| b.first_bad_seq < w.first_bad_seq) {
            worst = Some(b);
        }
    };
    for cp in checkpoints {
        if !cp.signature_ok(key) {
            consider(ChainBreak {
                first_bad_seq: cp.seq,
                reason: BreakReason::BadCheckpointSignature,
            });
            continue;
        }
        let position = cp.seq.checked_sub(1).and_then(|i| usize::try_from(i).ok());
        match position.and_then(|i| events.get(i)) {
            None => consider(ChainBreak {
                // The first missing entry.
                first_bad_seq: (events.len() as u64).saturating_add(1).min(cp.seq),
                reason: BreakReason::Truncated,
            }),
            Some(e) if e.seq == cp.seq && bool::from(e.hash.ct_eq(&cp.hash)) => {}
            Some(_) => consider(ChainBreak {
                first_bad_seq: cp.seq,
                reason: BreakReason::CheckpointMismatch,
            }),
        }
    }
    match worst {
        Some(b) => Err(b),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    const KEY: [u8; 32] = [42u8; 32];

    fn new_event(i: u64) -> NewAuditEvent {
        NewAuditEvent {
            actor: Some(UserId::random()),
            practice_id: Some(PracticeId::random()),
            object_type: "session_note".into(),
            object_id: Some(Uuid::new_v4()),
            action: if i.rem_euclid(2) == 0 {
                "read_notes"
            } else {
                "write_notes"
            }
            .into(),
            outcome: if i.rem_euclid(5) == 0 {
                Outcome::Denied
            } else {
                Outcome::Allowed
            },
            at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
                + Duration::microseconds(i as i64 * 1_234_567_891),
            request_id: format!("req-{i}"),
        }
    }

    fn chain_of(n: usize) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::with_capacity(n);
        for i in 0..n {
            let e = AuditEvent::chain(out.last(), new_event(i as u64));
            out.push(e);
        }
        out
    }

    #[test]
    fn a_fresh_chain_verifies_including_empty_and_single() {
        assert_eq!(verify(&[]), Ok(()));
        assert_eq!(verify(&chain_of(1)), Ok(()));
        let c = chain_of(100);
        assert_eq!(verify(&c), Ok(()));
        assert_eq!(c[0].prev_hash, GENESIS_HASH);
        assert_eq!(c[99].seq, 100);
        let cp = Checkpoint::sign(&c[99], &KEY);
        assert_eq!(verify_with_checkpoints(&c, &[cp], &KEY), Ok(()));
    }

    #[test]
    fn editing_any_field_breaks_the_chain_at_that_entry() {
        let base = chain_of(10);
        type Edit = fn(&mut AuditEvent);
        let edits: [(&str, Edit); 9] = [
            ("actor", |e| e.actor = Some(UserId::random())),
            ("actor none", |e| e.actor = None),
            ("practice", |e| e.practice_id = Some(PracticeId::random())),
            ("object type", |e| e.object_type.push('x')),
            ("object id", |e| e.object_id = None),
            ("action", |e| e.action = "export_client_record".into()),
            ("outcome", |e| e.outcome = Outcome::Allowed),
            ("time", |e| e.at += Duration::microseconds(1)),
            ("request id", |e| e.request_id.clear()),
        ];
        for (name, edit) in edits {
            let mut c = base.clone();
            // Edit the sixth entry (seq 6, a denial).
            edit(&mut c[5]);
            if c[5] == base[5] {
                continue; // the edit happened to be a no-op
            }
            assert_eq!(
                verify(&c),
                Err(ChainBreak {
                    first_bad_seq: 6,
                    reason: BreakReason::HashMismatch
                }),
                "{name}"
            );
        }
    }

    #[test]
    fn a_consistent_rewrite_of_one_entry_is_caught_at_the_next_and_by_checkpoints() {
        let base = chain_of(10);
        let cp = Checkpoint::sign(&base[9], &KEY);
        // Attacker edits entry 4 and recomputes its hash.
        let mut c = base.clone();
        c[3].outcome = Outcome::Allowed;
        c[3].action = "nothing_to_see".into();
        c[3].hash = c[3].compute_hash();
        assert_eq!(
            verify(&c),
            Err(ChainBreak {
                first_bad_seq: 5,
                reason: BreakReason::PrevHashMismatch
            })
        );
        // Attacker rewrites the whole tail from entry 4 consistently: only a
        // checkpoint exported earlier can tell.
        for i in 4..c.len() {
            c[i].prev_hash = c[i - 1].hash;
            c[i].hash = c[i].compute_hash();
        }
        assert_eq!(verify(&c), Ok(()));
        assert_eq!(
            verify_with_checkpoints(&c, &[cp], &KEY),
            Err(ChainBreak {
                first_bad_seq: 10,
                reason: BreakReason::CheckpointMismatch
            })
        );
        // With a checkpoint every few entries the break is narrowed down.
        let cps: Vec<_> = [2usize, 5, 9]
            .iter()
            .map(|i| Checkpoint::sign(&base[*i], &KEY))
            .collect();
        assert_eq!(
            verify_with_checkpoints(&c, &cps, &KEY)
                .unwrap_err()
                .first_bad_seq,
            6
        );
    }

    #[test]
    fn truncating_the_tail_is_caught_by_a_checkpoint() {
        let base = chain_of(10);
        let cp = Checkpoint::sign(&base[9], &KEY);
        let cut = &base[..7];
        assert_eq!(verify(cut), Ok(()), "a prefix is a valid chain by itself");
        assert_eq!(
            verify_with_checkpoints(cut, &[cp], &KEY),
            Err(ChainBreak {
                first_bad_seq: 8,
                reason: BreakReason::Truncated
            })
        );
        assert_eq!(
            verify_with_checkpoints(&[], &[cp], &KEY),
            Err(ChainBreak {
                first_bad_seq: 1,
                reason: BreakReason::Truncated
            })
        );
    }

    #[test]
    fn forged_or_foreign_checkpoints_are_rejected() {
        let base = chain_of(5);
        let mut cp = Checkpoint::sign(&base[4], &KEY);
        assert!(!cp.signature_ok(&[0u8; 32]));
        cp.seq = 3;
        assert_eq!(
            verify_with_checkpoints(&base, &[cp], &KEY)
                .unwrap_err()
                .reason,
            BreakReason::BadCheckpointSignature
        );
        let good = Checkpoint::sign(&base[4], &KEY);
        assert_eq!(Checkpoint::parse_line(&good.to_line()), Some(good));
        for bad in [
            "",
            "1",
            "x y z",
            "1 00 00",
            &format!("{} extra", good.to_line()),
        ] {
            assert_eq!(Checkpoint::parse_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn incremental_verification_from_an_anchor() {
        let c = chain_of(20);
        let anchor = Anchor {
            seq: c[9].seq,
            hash: c[9].hash,
        };
        assert_eq!(verify_from(Some(anchor), &c[10..]), Ok(()));
        let wrong = Anchor {
            seq: 10,
            hash: [1u8; 32],
        };
        assert_eq!(
            verify_from(Some(wrong), &c[10..]),
            Err(ChainBreak {
                first_bad_seq: 11,
                reason: BreakReason::PrevHashMismatch
            })
        );
    }

    #[test]
    fn time_is_kept_at_microsecond_precision_so_db_round_trips_verify() {
        let mut e = new_event(1);
        e.at += Duration::nanoseconds(999);
        let ev = AuditEvent::chain(None, e);
        assert_eq!(ev.at.timestamp_subsec_nanos() % 1000, 0);
        // What a database returns (micros) hashes the same.
        let mut from_db = ev.clone();
        from_db.at = DateTime::from_timestamp_micros(ev.at.timestamp_micros()).unwrap();
        assert_eq!(verify(&[from_db]), Ok(()));
    }

    #[test]
    fn canonical_form_is_unambiguous_across_field_boundaries() {
        let mut a = new_event(1);
        a.object_type = "ab".into();
        a.action = "c".into();
        let mut b = a.clone();
        b.object_type = "a".into();
        b.action = "bc".into();
        assert_ne!(
            AuditEvent::chain(None, a).hash,
            AuditEvent::chain(None, b).hash
        );
    }

    #[test]
    fn hashes_round_trip_as_hex_and_debug_shows_hex() {
        let c = chain_of(1);
        assert_eq!(parse_hex(&hex(&c[0].hash)), Some(c[0].hash));
        assert!(format!("{:?}", c[0]).contains(&hex(&c[0].hash)));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(Outcome::parse("denied"), Some(Outcome::Denied));
        assert_eq!(Outcome::parse("maybe"), None);
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Edit {
            index: prop::sample::Index,
            field: u8,
        },
        Delete {
            index: prop::sample::Index,
        },
        Insert {
            index: prop::sample::Index,
        },
        Swap {
            a: prop::sample::Index,
            b: prop::sample::Index,
        },
        Truncate {
            keep: prop::sample::Index,
        },
    }

    fn arb_mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<prop::sample::Index>(), 0u8..6)
                .prop_map(|(index, field)| Mutation::Edit { index, field }),
            any::<prop::sample::Index>().prop_map(|index| Mutation::Delete { index }),
            any::<prop::sample::Index>().prop_map(|index| Mutation::Insert { index }),
            (any::<prop::sample::Index>(), any::<prop::sample::Index>())
                .prop_map(|(a, b)| Mutation::Swap { a, b }),
            any::<prop::sample::Index>().prop_map(|keep| Mutation::Truncate { keep }),
        ]
    }

    /// Apply a mutation; returns the copy, or None when it changed nothing.
    fn apply(base: &[AuditEvent], m: &Mutation) -> Option<Vec<AuditEvent>> {
        let mut c = base.to_vec();
        let n = c.len();
        match m {
            Mutation::Edit { index, field } => {
                let e = &mut c[index.index(n)];
                match field {
                    0 => e.actor = Some(UserId::random()),
                    1 => e.action.push('!'),
                    2 => {
                        e.outcome = if e.outcome == Outcome::Allowed {
                            Outcome::Denied
                        } else {
                            Outcome::Allowed
                        }
                    }
                    3 => e.at += Duration::seconds(1),
                    4 => e.object_id = Some(Uuid::new_v4()),
                    _ => e.hash[0] ^= 1,
                }
            }
            Mutation::Delete { index } => {
                c.remove(index.index(n));
            }
            Mutation::Insert { index } => {
                let i = index.index(n + 1);
                let forged =
                    AuditEvent::chain(c.get(i.wrapping_sub(1)).filter(|_| i > 0), new_event(999));
                // Naive forgery: chained to the entry before, with the next seq.
                c.insert(i, forged);
            }
            Mutation::Swap { a, b } => {
                c.swap(a.index(n), b.index(n));
            }
            Mutation::Truncate { keep } => {
                c.truncate(keep.index(n));
            }
        }
        (c != base).then_some(c)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Any random edit, deletion, insertion, reordering or tail truncation of
        /// a copy is detected, and the report names the first entry that differs.
        #[test]
        fn every_tampering_is_detected_at_the_first_changed_entry(
            n in 1usize..40, m in arb_mutation()
        ) {
            let base = chain_of(n);
            let cp = Checkpoint::sign(&base[n - 1], &KEY);
            let Some(copy) = apply(&base, &m) else { return Ok(()); };
            let first_diff = base.iter().zip(copy.iter()).position(|(a, b)| a != b)
                .unwrap_or(base.len().min(copy.len()));
            let expected_seq = first_diff as u64 + 1;
            let result = verify_with_checkpoints(&copy, &[cp], &KEY);
            match m {
                // An insertion at the very end is a valid append after the
                // checkpoint; the next checkpoint covers it.
                Mutation::Insert { index } if index.index(n + 1) == n => {
                    prop_assert_eq!(result, Ok(()));
                }
                // The naive forgery chains correctly to its predecessor, so the
                // chain breaks at the entry after it; a checkpoint on the forged
                // position catches the forgery itself.
                Mutation::Insert { .. } => {
                    let b = result.unwrap_err();
                    prop_assert!(
                        b.first_bad_seq == expected_seq + 1
                            || (b.first_bad_seq == expected_seq
                                && b.reason == BreakReason::CheckpointMismatch),
                        "{:?} expected {}", b, expected_seq + 1
                    );
                }
                _ => {
                    let b = result.unwrap_err();
                    prop_assert_eq!(b.first_bad_seq, expected_seq, "{:?}", b);
                }
            }
        }
    }
}
