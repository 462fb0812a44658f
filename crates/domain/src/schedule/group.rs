//! Group programmes (psychoeducation, skills groups): a facilitator (and an
//! optional co-facilitator), members who are clients of the practice up to a
//! capacity, group sessions on the facilitator's calendar (appointment kind
//! `group`, never double-booked), attendance per session, per-member notes
//! and the group's measure schedule (instrument ids the members answer
//! through the ordinary submission path).
//!
//! Privacy between members: a member sees the other members by first name
//! only ([`member_alias`]) and never another member's notes or answers.

use super::{
    occurrences, AppointmentId, AppointmentKind, AppointmentStatus, AppointmentType, Format,
    Interval, Recurrence, ScheduleError, SeriesId,
};
use crate::ids::{ClientId, PracticeId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The most members a programme may have.
pub const MAX_GROUP_CAPACITY: u32 = 30;
/// The most participants (members and facilitators together) in one group
/// video room: a full mesh sends every stream to every peer, so each
/// browser uploads `n - 1` streams.
pub const VIDEO_MESH_LIMIT: usize = 6;
/// The longest programme name.
pub const MAX_GROUP_NAME_CHARS: usize = 120;
/// The longest per-member note.
pub const MAX_GROUP_NOTE_CHARS: usize = 20_000;
/// The most instruments on a group's measure schedule.
pub const MAX_GROUP_MEASURES: usize = 10;

/// What can go wrong with a group programme. Every message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("client_id: already a member of this group")]
    AlreadyMember,
    #[error("client_id: not a member of this group")]
    NotMember,
    #[error("capacity: the group is full ({0} members)")]
    Full(u32),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> GroupError {
    GroupError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// One group programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GroupId(Uuid);

impl GroupId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a programme is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    Psychoeducation,
    Skills,
}

impl GroupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Psychoeducation => "psychoeducation",
            Self::Skills => "skills",
        }
    }
    pub fn parse(s: &str) -> Result<Self, GroupError> {
        match s {
            "psychoeducation" => Ok(Self::Psychoeducation),
            "skills" => Ok(Self::Skills),
            other => Err(invalid(
                "kind",
                format!(
                    "'{}' is not psychoeducation or skills",
                    other.chars().take(40).collect::<String>()
                ),
            )),
        }
    }
}

/// A group programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProgramme {
    pub id: GroupId,
    pub practice_id: PracticeId,
    pub name: String,
    pub kind: GroupKind,
    pub facilitator: UserId,
    pub co_facilitator: Option<UserId>,
    /// The most members at one time.
    pub capacity: u32,
    /// Clients may join by themselves (else the facilitator adds them).
    pub self_enrolment: bool,
    /// The instruments members answer for this group (instrument ids).
    pub measures: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// The fields of a new programme.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewGroup {
    pub name: String,
    pub kind: GroupKind,
    pub co_facilitator: Option<UserId>,
    pub capacity: u32,
    #[serde(default)]
    pub self_enrolment: bool,
    #[serde(default)]
    pub measures: Vec<String>,
}

impl GroupProgramme {
    /// A validated programme facilitated by `facilitator`.
    pub fn new(
        practice_id: PracticeId,
        facilitator: UserId,
        spec: NewGroup,
        now: DateTime<Utc>,
    ) -> Result<Self, GroupError> {
        let name = spec.name.trim().to_string();
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_GROUP_NAME_CHARS {
            return Err(invalid(
                "name",
                format!("must be 1 to {MAX_GROUP_NAME_CHARS} characters (has {chars})"),
            ));
        }
        if !(1..=MAX_GROUP_CAPACITY).contains(&spec.capacity) {
            return Err(invalid(
                "capacity",
                format!("{} is outside 1..={MAX_GROUP_CAPACITY}", spec.capacity),
            ));
        }
        if spec.co_facilitator == Some(facilitator) {
            return Err(invalid(
                "co_facilitator",
                "must be someone other than the facilitator",
            ));
        }
        if spec.measures.len() > MAX_GROUP_MEASURES {
            return Err(invalid(
                "measures",
                format!("at most {MAX_GROUP_MEASURES} instruments"),
            ));
        }
        let mut measures: Vec<String> = Vec::with_capacity(spec.measures.len());
        for m in spec.measures {
            let m = m.trim().to_string();
            let well_formed = !m.is_empty()
                && m.len() <= 64
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !well_formed {
                return Err(invalid(
                    "measures",
                    "each entry must be an instrument id (letters, digits, - _ .)",
                ));
            }
            if !measures.contains(&m) {
                measures.push(m);
            }
        }
        Ok(Self {
            id: GroupId::random(),
            practice_id,
            name,
            kind: spec.kind,
            facilitator,
            co_facilitator: spec.co_facilitator,
            capacity: spec.capacity,
            self_enrolment: spec.self_enrolment,
            measures,
            created_at: now,
        })
    }

    /// Whether `user` runs this group (facilitator or co-facilitator).
    pub fn is_facilitator(&self, user: UserId) -> bool {
        self.facilitator == user || self.co_facilitator == Some(user)
    }

    /// The facilitators, facilitator first.
    pub fn facilitators(&self) -> Vec<UserId> {
        std::iter::once(self.facilitator)
            .chain(self.co_facilitator)
            .collect()
    }
}

/// One client's membership of a programme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub group_id: GroupId,
    pub client_id: ClientId,
    pub joined_at: DateTime<Utc>,
    /// `None` while the client is a member.
    pub left_at: Option<DateTime<Utc>>,
}

impl Membership {
    pub fn is_current(&self) -> bool {
        self.left_at.is_none()
    }

    /// Whether the client was a member at some time during `session`.
    pub fn covers(&self, session: &GroupSession) -> bool {
        self.joined_at < session.ends_at && self.left_at.is_none_or(|l| l > session.starts_at)
    }
}

/// Decides adding `client` to `programme` given its memberships: refused
/// when already a current member or when the group is full. (The store
/// enforces capacity again atomically.)
pub fn admit_member(
    programme: &GroupProgramme,
    memberships: &[Membership],
    client: ClientId,
    now: DateTime<Utc>,
) -> Result<Membership, GroupError> {
    let current: Vec<&Membership> = memberships.iter().filter(|m| m.is_current()).collect();
    if current.iter().any(|m| m.client_id == client) {
        return Err(GroupError::AlreadyMember);
    }
    let count = u32::try_from(current.len()).unwrap_or(u32::MAX);
    if count >= programme.capacity {
        return Err(GroupError::Full(programme.capacity));
    }
    Ok(Membership {
        group_id: programme.id,
        client_id: client,
        joined_at: now,
        left_at: None,
    })
}

/// One meeting of a group: an appointment of kind `group` on the
/// facilitator's calendar. Its id is an [`AppointmentId`], so the session
/// room, reminders and calendars treat it like any appointment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSession {
    pub id: AppointmentId,
    pub practice_id: PracticeId,
    pub group_id: GroupId,
    pub facilitator: UserId,
    pub co_facilitator: Option<UserId>,
    pub appointment_type: AppointmentType,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// `booked` or `cancelled`.
    pub status: AppointmentStatus,
    /// The weekly or fortnightly series this session belongs to, if any.
    #[serde(default)]
    pub series_id: Option<SeriesId>,
    pub created_at: DateTime<Utc>,
}

impl GroupSession {
    /// A new session of `programme` (whole minutes, in the future).
    pub fn schedule(
        programme: &GroupProgramme,
        starts_at: DateTime<Utc>,
        minutes: u32,
        format: Format,
        now: DateTime<Utc>,
    ) -> Result<Self, GroupError> {
        use chrono::Timelike;
        if starts_at.second() != 0 || starts_at.nanosecond() != 0 {
            return Err(invalid("starts_at", "must be a whole minute"));
        }
        if starts_at <= now {
            return Err(invalid("starts_at", "must be in the future"));
        }
        let appointment_type = AppointmentType::new(AppointmentKind::Group, minutes, format)?;
        Ok(Self {
            id: AppointmentId::random(),
            practice_id: programme.practice_id,
            group_id: programme.id,
            facilitator: programme.facilitator,
            co_facilitator: programme.co_facilitator,
            appointment_type,
            starts_at,
            ends_at: starts_at + appointment_type.duration(),
            status: AppointmentStatus::Booked,
            series_id: None,
            created_at: now,
        })
    }

    /// A weekly or fortnightly series of sessions of `programme`, the first
    /// at `first`, each at the same wall-clock time in `time_zone` (the
    /// facilitator's: a 18:00 London group stays at 18:00 London across
    /// daylight-saving changes), sharing one series id. Occurrences already
    /// past at `now` are refused with the first one's error.
    pub fn series(
        programme: &GroupProgramme,
        first: DateTime<Utc>,
        minutes: u32,
        format: Format,
        rule: Recurrence,
        time_zone: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self>, GroupError> {
        let tz = super::parse_time_zone(time_zone)?;
        let wall = first.with_timezone(&tz).naive_local();
        let series = SeriesId::random();
        occurrences(wall, time_zone, minutes, rule)?
            .into_iter()
            .map(|i| {
                let mut s = Self::schedule(programme, i.start, minutes, format, now)?;
                s.series_id = Some(series);
                Ok(s)
            })
            .collect()
    }

    pub fn interval(&self) -> Interval {
        Interval {
            start: self.starts_at,
            end: self.ends_at,
        }
    }

    pub fn is_facilitator(&self, user: UserId) -> bool {
        self.facilitator == user || self.co_facilitator == Some(user)
    }
}

/// A member's attendance of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attendance {
    Present,
    Absent,
    /// The member cancelled (told the group in advance).
    Cancelled,
}

impl Attendance {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Absent => "absent",
            Self::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Result<Self, GroupError> {
        match s {
            "present" => Ok(Self::Present),
            "absent" => Ok(Self::Absent),
            "cancelled" => Ok(Self::Cancelled),
            other => Err(invalid(
                "status",
                format!(
                    "'{}' is not present, absent or cancelled",
                    other.chars().take(40).collect::<String>()
                ),
            )),
        }
    }
}

/// Decides recording `attendance` of `member` at `session` at `now`:
/// present or absent only once the session has started; a cancellation at
/// any time before its end; only for someone who was a member during it.
pub fn check_attendance(
    session: &GroupSession,
    member: Option<&Membership>,
    attendance: Attendance,
    now: DateTime<Utc>,
) -> Result<(), GroupError> {
    if session.status == AppointmentStatus::Cancelled {
        return Err(invalid("session", "the session was cancelled"));
    }
    if !member.is_some_and(|m| m.covers(session)) {
        return Err(GroupError::NotMember);
    }
    match attendance {
        Attendance::Present | Attendance::Absent if now < session.starts_at => Err(invalid(
            "status",
            "present or absent can be recorded once the session has started",
        )),
        Attendance::Cancelled if now >= session.ends_at => Err(invalid(
            "status",
            "a cancellation must be recorded before the session ends",
        )),
        _ => Ok(()),
    }
}

/// A facilitator's note about one member (sealed at rest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupNote {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub group_id: GroupId,
    pub client_id: ClientId,
    /// The session the note is about, if any.
    pub session_id: Option<AppointmentId>,
    pub author: UserId,
    pub body: String,
    pub written_at: DateTime<Utc>,
}

impl GroupNote {
    /// A validated note (1 to [`MAX_GROUP_NOTE_CHARS`] characters).
    pub fn new(
        programme: &GroupProgramme,
        client_id: ClientId,
        session_id: Option<AppointmentId>,
        author: UserId,
        body: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, GroupError> {
        let body = body.trim();
        let chars = body.chars().count();
        if chars == 0 || chars > MAX_GROUP_NOTE_CHARS {
            return Err(invalid(
                "body",
                format!("must be 1 to {MAX_GROUP_NOTE_CHARS} characters (has {chars})"),
            ));
        }
        Ok(Self {
            id: Uuid::now_v7(),
            practice_id: programme.practice_id,
            group_id: programme.id,
            client_id,
            session_id,
            author,
            body: body.to_string(),
            written_at: now,
        })
    }
}

/// How a member is shown to the other members: the first word of their
/// name (their first name), or "Member" when there is none.
pub fn member_alias(display_name: &str) -> String {
    display_name
        .split_whitespace()
        .next()
        .map(|w| w.chars().take(40).collect())
        .unwrap_or_else(|| "Member".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 4, 9, 0, 0).unwrap()
    }

    fn spec(capacity: u32) -> NewGroup {
        NewGroup {
            name: "  Managing worry  ".into(),
            kind: GroupKind::Psychoeducation,
            co_facilitator: None,
            capacity,
            self_enrolment: false,
            measures: vec!["gad7".into(), "gad7".into(), "phq9".into()],
        }
    }

    fn programme(capacity: u32) -> GroupProgramme {
        GroupProgramme::new(
            PracticeId::random(),
            UserId::random(),
            spec(capacity),
            now(),
        )
        .unwrap()
    }

    #[test]
    fn a_programme_is_validated_and_normalised() {
        let g = programme(8);
        assert_eq!(g.name, "Managing worry");
        // Duplicated instruments are listed once.
        assert_eq!(g.measures, vec!["gad7", "phq9"]);
        let p = PracticeId::random();
        let f = UserId::random();
        let err = |s: NewGroup| GroupProgramme::new(p, f, s, now()).unwrap_err().to_string();
        assert!(err(NewGroup {
            name: "   ".into(),
            ..spec(8)
        })
        .starts_with("name:"));
        assert!(err(NewGroup {
            name: "x".repeat(MAX_GROUP_NAME_CHARS + 1),
            ..spec(8)
        })
        .starts_with("name:"));
        assert!(err(spec(0)).starts_with("capacity:"));
        assert!(err(spec(MAX_GROUP_CAPACITY + 1)).starts_with("capacity:"));
        assert!(err(NewGroup {
            co_facilitator: Some(f),
            ..spec(8)
        })
        .starts_with("co_facilitator:"));
        assert!(err(NewGroup {
            measures: vec!["phq9; drop".into()],
            ..spec(8)
        })
        .starts_with("measures:"));
        assert!(err(NewGroup {
            measures: (0..=MAX_GROUP_MEASURES).map(|i| format!("m{i}")).collect(),
            ..spec(8)
        })
        .starts_with("measures:"));
    }

    #[test]
    fn members_are_admitted_up_to_capacity_and_once() {
        let g = programme(2);
        let (a, b, c) = (ClientId::random(), ClientId::random(), ClientId::random());
        let ma = admit_member(&g, &[], a, now()).unwrap();
        assert_eq!(
            admit_member(&g, &[ma], a, now()),
            Err(GroupError::AlreadyMember)
        );
        let mb = admit_member(&g, &[ma], b, now()).unwrap();
        assert_eq!(
            admit_member(&g, &[ma, mb], c, now()),
            Err(GroupError::Full(2))
        );
        // Someone who left frees the place and may come back.
        let left = Membership {
            left_at: Some(now()),
            ..ma
        };
        assert!(admit_member(&g, &[left, mb], c, now()).is_ok());
        assert!(admit_member(&g, &[left, mb], a, now()).is_ok());
    }

    #[test]
    fn sessions_are_group_appointments_in_the_future() {
        let g = programme(8);
        let start = now() + Duration::days(2);
        let s = GroupSession::schedule(&g, start, 90, Format::Video, now()).unwrap();
        assert_eq!(s.appointment_type.kind, AppointmentKind::Group);
        assert_eq!(s.ends_at - s.starts_at, Duration::minutes(90));
        assert!(s.is_facilitator(g.facilitator));
        assert!(GroupSession::schedule(&g, now(), 90, Format::Video, now())
            .unwrap_err()
            .to_string()
            .starts_with("starts_at:"));
        assert!(
            GroupSession::schedule(&g, start + Duration::seconds(1), 90, Format::Video, now())
                .unwrap_err()
                .to_string()
                .starts_with("starts_at:")
        );
        assert!(
            GroupSession::schedule(&g, start, 1000, Format::Video, now())
                .unwrap_err()
                .to_string()
                .starts_with("minutes:")
        );
    }

    #[test]
    fn attendance_follows_the_session_and_the_membership() {
        let g = programme(8);
        let s = GroupSession::schedule(&g, now() + Duration::days(1), 60, Format::Video, now())
            .unwrap();
        let m = admit_member(&g, &[], ClientId::random(), now()).unwrap();
        let before = s.starts_at - Duration::hours(1);
        let during = s.starts_at + Duration::minutes(5);
        assert!(check_attendance(&s, Some(&m), Attendance::Present, before).is_err());
        assert!(check_attendance(&s, Some(&m), Attendance::Cancelled, before).is_ok());
        assert!(check_attendance(&s, Some(&m), Attendance::Present, during).is_ok());
        assert!(check_attendance(&s, Some(&m), Attendance::Absent, s.ends_at).is_ok());
        assert!(check_attendance(&s, Some(&m), Attendance::Cancelled, s.ends_at).is_err());
        assert_eq!(
            check_attendance(&s, None, Attendance::Present, during),
            Err(GroupError::NotMember)
        );
        // Joined after the session ended: not a member of that session.
        let late = Membership {
            joined_at: s.ends_at,
            ..m
        };
        assert_eq!(
            check_attendance(&s, Some(&late), Attendance::Absent, s.ends_at),
            Err(GroupError::NotMember)
        );
        let mut cancelled = s.clone();
        cancelled.status = AppointmentStatus::Cancelled;
        assert!(check_attendance(&cancelled, Some(&m), Attendance::Present, during).is_err());
        for a in [
            Attendance::Present,
            Attendance::Absent,
            Attendance::Cancelled,
        ] {
            assert_eq!(Attendance::parse(a.as_str()).unwrap(), a);
        }
        assert!(Attendance::parse("late")
            .unwrap_err()
            .to_string()
            .starts_with("status:"));
    }

    #[test]
    fn notes_are_bounded_and_members_are_shown_by_first_name() {
        let g = programme(8);
        let c = ClientId::random();
        assert!(GroupNote::new(&g, c, None, g.facilitator, " \n ", now()).is_err());
        assert!(GroupNote::new(
            &g,
            c,
            None,
            g.facilitator,
            &"x".repeat(MAX_GROUP_NOTE_CHARS + 1),
            now()
        )
        .unwrap_err()
        .to_string()
        .starts_with("body:"));
        let n = GroupNote::new(&g, c, None, g.facilitator, " Shared a skill. ", now()).unwrap();
        assert_eq!(n.body, "Shared a skill.");
        assert_eq!(member_alias("Jane Q. Public"), "Jane");
        assert_eq!(member_alias("   "), "Member");
        assert_eq!(member_alias(""), "Member");
    }
}
