//! The one authorization policy: [`authorize`] decides every request.
//!
//! Every HTTP route, WebSocket message and CLI command that touches practice
//! data declares an [`Action`] and builds a [`Resource`]; the web layer loads
//! the [`Actor`] (from the session, with the user's care relationships and
//! active break-glass grants) and asks [`authorize`]. Nothing else decides
//! who may see what (security goal G1).
//!
//! The rules, in the order they are applied:
//!
//! 1. **Tenancy.** A resource of another practice is [`Decision::NotFound`] for
//!    everybody, including the platform operator: the web layer answers 404, so
//!    no request can learn that an object exists in another practice (G1, G2).
//! 2. **Second factor.** A staff member whose session has not completed MFA
//!    reaches only self-service actions (enough to enrol or complete MFA);
//!    everything else is [`Decision::RequiresMfa`] (G8).
//! 3. **Role and relationship.** A clinician sees a client only through a
//!    care relationship (treating or supervising) or an unexpired break-glass
//!    grant; a practice admin runs the practice without clinical content unless
//!    explicitly granted read access; a client sees their own record only
//!    (another client's record is [`Decision::NotFound`]); the operator only
//!    administers the platform and never reaches clinical content (G1, G15).
//! 4. **Re-authentication.** Sensitive actions (exports, MFA or e-mail change,
//!    break-glass, granting clinical access) that would be allowed demand a
//!    password or second-factor re-entry within the last
//!    [`REAUTH_WINDOW_MINUTES`] minutes, else [`Decision::RequiresReauth`] (G10).

use crate::ids::{ClientId, PracticeId, UserId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How recent a re-authentication must be for a sensitive action (G10: 5 min).
pub const REAUTH_WINDOW_MINUTES: i64 = 5;

/// How long a break-glass grant lasts (G15: 60 min, our proposal).
pub const BREAK_GLASS_MINUTES: i64 = 60;

pub use crate::care::CareRole;
pub use crate::user::Role;

/// One active care relationship of the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareLink {
    pub client_id: ClientId,
    pub kind: CareRole,
}

/// An emergency access grant opened by the actor (with a written reason, audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassGrant {
    pub client_id: ClientId,
    /// The grant ends at this instant (opened + [`BREAK_GLASS_MINUTES`]).
    pub expires_at: DateTime<Utc>,
}

impl BreakGlassGrant {
    /// A grant opened at `opened_at` for the standard duration.
    pub fn opened(client_id: ClientId, opened_at: DateTime<Utc>) -> Self {
        Self {
            client_id,
            expires_at: opened_at + Duration::minutes(BREAK_GLASS_MINUTES),
        }
    }

    /// True while the grant is in force (the expiry instant itself is excluded).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }
}

/// Shortest written reason accepted for break-glass access.
pub const BREAK_GLASS_MIN_REASON_CHARS: usize = 20;
/// Longest written reason accepted.
pub const BREAK_GLASS_MAX_REASON_CHARS: usize = 2000;
/// At most this many break-glass openings per clinician per 24 hours (G15).
pub const BREAK_GLASS_MAX_PER_DAY: usize = 3;

/// Why break-glass access was not opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakGlassError {
    #[error("break-glass: not permitted ({0})")]
    NotPermitted(&'static str),
    #[error("break-glass: reason must be {BREAK_GLASS_MIN_REASON_CHARS} to {BREAK_GLASS_MAX_REASON_CHARS} characters (has {0})")]
    Reason(usize),
    #[error("break-glass: at most {BREAK_GLASS_MAX_PER_DAY} openings per 24 hours")]
    RateLimited,
}

/// Open emergency access to `client` (G15). `opened_last_24h` are the
/// instants of the actor's previous openings (from the audit log). On success
/// the caller stores the grant, writes a high-severity audit event (the
/// reason is stored encrypted, not in the audit row) and notifies the
/// practice owner and the client's treating clinicians.
pub fn open_break_glass(
    actor: &Actor,
    practice_id: PracticeId,
    client: ClientId,
    reason: &str,
    opened_last_24h: &[DateTime<Utc>],
) -> Result<BreakGlassGrant, BreakGlassError> {
    let resource = Resource::client_record(practice_id, client);
    match authorize(actor, Action::BreakGlassOpen, &resource) {
        Decision::Allow => {}
        other => return Err(BreakGlassError::NotPermitted(other.as_str())),
    }
    let chars = reason.trim().chars().count();
    if !(BREAK_GLASS_MIN_REASON_CHARS..=BREAK_GLASS_MAX_REASON_CHARS).contains(&chars) {
        return Err(BreakGlassError::Reason(chars));
    }
    let recent = opened_last_24h
        .iter()
        .filter(|t| **t <= actor.now && actor.now - **t < Duration::hours(24))
        .count();
    if recent >= BREAK_GLASS_MAX_PER_DAY {
        return Err(BreakGlassError::RateLimited);
    }
    Ok(BreakGlassGrant::opened(client, actor.now))
}

/// Who is asking, as loaded by the web layer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: UserId,
    /// The practice the account belongs to; `None` only for operators.
    pub practice_id: Option<PracticeId>,
    pub role: Role,
    /// The session has completed its second factor, or the account needs
    /// none (a client who has not enrolled one).
    pub mfa_satisfied: bool,
    /// The account has a second factor enrolled. Without a completed second
    /// factor, the only thing a session may do is enrol the *first* one; an
    /// enrolled factor can never be replaced by a password-only session.
    pub mfa_enrolled: bool,
    /// When the user last re-entered a credential in this session.
    pub reauthenticated_at: Option<DateTime<Utc>>,
    /// The client record this account is, when `role` is [`Role::Client`].
    pub client_id: Option<ClientId>,
    /// Active care relationships (staff).
    pub relationships: Vec<CareLink>,
    /// Break-glass grants the actor opened (expired ones are ignored).
    pub break_glass: Vec<BreakGlassGrant>,
    /// A practice owner granted this admin read access to clinical content.
    pub granted_clinical_access: bool,
    /// The instant of the request.
    pub now: DateTime<Utc>,
}

impl Actor {
    /// A staff actor with no relationships; fill the rest with struct update syntax.
    pub fn staff(user_id: UserId, practice_id: PracticeId, role: Role, now: DateTime<Utc>) -> Self {
        Self {
            user_id,
            practice_id: Some(practice_id),
            role,
            mfa_satisfied: false,
            mfa_enrolled: false,
            reauthenticated_at: None,
            client_id: None,
            relationships: Vec::new(),
            break_glass: Vec::new(),
            granted_clinical_access: false,
            now,
        }
    }

    /// A client actor for their own client record (second factor optional
    /// for clients: not enrolled, so satisfied).
    pub fn client(
        user_id: UserId,
        practice_id: PracticeId,
        client_id: ClientId,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            client_id: Some(client_id),
            mfa_satisfied: true,
            ..Self::staff(user_id, practice_id, Role::Client, now)
        }
    }

    /// A platform operator (belongs to no practice).
    pub fn operator(user_id: UserId, now: DateTime<Utc>) -> Self {
        Self {
            user_id,
            practice_id: None,
            role: Role::Operator,
            mfa_satisfied: false,
            mfa_enrolled: false,
            reauthenticated_at: None,
            client_id: None,
            relationships: Vec::new(),
            break_glass: Vec::new(),
            granted_clinical_access: false,
            now,
        }
    }

    /// The actor's relationship to a client, the strongest one if several.
    pub fn relationship_to(&self, client: ClientId) -> Option<CareRole> {
        let mut found = None;
        for r in self.relationships.iter().filter(|r| r.client_id == client) {
            match r.kind {
                CareRole::Treating => return Some(CareRole::Treating),
                CareRole::Supervising => found = Some(CareRole::Supervising),
            }
        }
        found
    }

    /// True when an unexpired break-glass grant covers this client.
    pub fn has_break_glass(&self, client: ClientId) -> bool {
        self.break_glass
            .iter()
            .any(|g| g.client_id == client && g.is_active(self.now))
    }

    fn recently_reauthenticated(&self) -> bool {
        match self.reauthenticated_at {
            Some(at) => at <= self.now && self.now - at <= Duration::minutes(REAUTH_WINDOW_MINUTES),
            None => false,
        }
    }
}

/// What an action touches, for the MFA rule and for audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Reads or changes clinical content of one client; audited (G13).
    Clinical,
    /// Runs the practice: users, schedule, settings, audit log (ids, no content).
    Administrative,
    /// The signed-in user's own account (profile, password, MFA, own data).
    SelfService,
    /// Runs the platform; only operators.
    Platform,
}

/// Everything a request can ask to do. New product features add variants
/// here (and a row in the policy matrix test, which fails until they do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    // --- clinical (resource names a client) ---
    /// Open the client's record (demographics, episode, risk summary).
    ReadClinicalRecord,
    /// Change the client's record (episode, risk, care details).
    WriteClinicalRecord,
    /// Read session notes.
    ReadNotes,
    /// Write or edit an unsigned session note.
    WriteNotes,
    /// Sign a note (it becomes immutable, G15b).
    SignNote,
    /// Add an addendum to a signed note.
    AddendNote,
    /// Read questionnaire answers and scores.
    ReadMeasures,
    /// Assign measures, enter scores on the client's behalf.
    WriteMeasures,
    /// Administer a clinician-rated form on the client's record (the structured
    /// risk assessment): the treating clinician or the client's supervisor.
    AdministerMeasures,
    /// Read the treatment plan.
    ReadPlan,
    /// Change the treatment plan.
    WritePlan,
    /// Read the case formulation.
    ReadFormulation,
    /// Change the case formulation.
    WriteFormulation,
    /// Read the secure messages of the client's conversation.
    ReadMessages,
    /// Send a secure message in the client's conversation.
    SendMessage,
    /// Answer a questionnaire on one's own record (client).
    SubmitOwnMeasures,
    /// See who opened the client's record and when (ids and times only).
    ReadRecordAccessLedger,
    /// Export the client's full record (staff).
    ExportClientRecord,
    /// Open emergency access to a client without a care relationship (G15).
    BreakGlassOpen,
    /// Open a private psychotherapy note: its author only (the resource's
    /// owner is the note's author), never supervisors, admins or break-glass.
    ReadPsychotherapyNote,
    /// Co-sign a signed note as the client's supervisor.
    CosignNote,
    /// Read the client's safety plan (the client reads their own).
    ReadSafetyPlan,
    /// Write a new version of the client's safety plan.
    WriteSafetyPlan,
    /// Read homework assignments and the worksheets sent back.
    ReadHomework,
    /// Assign homework from the plan; mark returned worksheets reviewed.
    AssignHomework,
    /// Fill in and send one's own homework worksheets (client).
    CompleteOwnHomework,
    /// Fill in one's own intake (client).
    CompleteOwnIntake,
    /// Read a group member's group notes and group-measure scores: the
    /// group's facilitators (the resource's owner is the facilitator when
    /// the actor runs the group) and the member's own care team.
    ReadGroupMember,
    /// Write a note about a group member: the group's facilitators only.
    WriteGroupNote,
    // --- administrative (practice-level) ---
    /// Create, disable, change roles of practice accounts.
    ManagePracticeUsers,
    /// Invite a clinician, supervisor or admin (owner only).
    InviteStaff,
    /// Invite a client (clinical roles).
    InviteClient,
    /// Read the practice's audit log (ids and times, no content).
    ReadAuditLog,
    /// Change practice settings (name, hours, retention).
    ManagePracticeSettings,
    /// Assign or end care relationships.
    ManageCareRelationships,
    /// Grant a practice admin read access to clinical content (owner only).
    GrantClinicalAccess,
    /// See client names and contact details (no clinical content).
    ReadClientDirectory,
    /// See appointments.
    ReadSchedule,
    /// Book, move or cancel appointments.
    ManageSchedule,
    /// See, edit and sign off the practice's urgent-language phrase list
    /// (the phrases that turn a client's secure message into a risk task).
    /// A clinical judgement about the practice, not about one client:
    /// clinicians, supervisors and the owner; never admin-only staff,
    /// clients or operators. Tapestry has no separate "clinical lead" right,
    /// so every clinical role of the practice may review.
    ReviewUrgentLanguage,
    // --- self-service (resource owned by the actor) ---
    /// Read and change one's own name, contact details, preferences.
    ManageOwnProfile,
    /// Change one's own password.
    ChangeOwnPassword,
    /// Enrol, reset or remove one's own second factor.
    ChangeOwnMfa,
    /// Change one's own e-mail address.
    ChangeOwnEmail,
    /// See who opened one's own record and when (client).
    ReadOwnAccessLedger,
    /// Download everything the practice holds about oneself (client, GDPR Art. 15/20).
    ExportOwnData,
    // --- platform (operator) ---
    /// Create, suspend, delete practices.
    ManagePractices,
    /// Read platform health and metrics (no practice data).
    ReadPlatformHealth,
}

impl Action {
    /// Every action, for exhaustive tests.
    pub const ALL: [Action; 48] = [
        Action::ReadClinicalRecord,
        Action::WriteClinicalRecord,
        Action::ReadNotes,
        Action::WriteNotes,
        Action::SignNote,
        Action::AddendNote,
        Action::ReadMeasures,
        Action::WriteMeasures,
        Action::AdministerMeasures,
        Action::ReadPlan,
        Action::WritePlan,
        Action::ReadFormulation,
        Action::WriteFormulation,
        Action::ReadMessages,
        Action::SendMessage,
        Action::SubmitOwnMeasures,
        Action::ReadRecordAccessLedger,
        Action::ExportClientRecord,
        Action::BreakGlassOpen,
        Action::ReadPsychotherapyNote,
        Action::CosignNote,
        Action::ReadSafetyPlan,
        Action::WriteSafetyPlan,
        Action::ReadHomework,
        Action::AssignHomework,
        Action::CompleteOwnHomework,
        Action::CompleteOwnIntake,
        Action::ReadGroupMember,
        Action::WriteGroupNote,
        Action::ManagePracticeUsers,
        Action::InviteStaff,
        Action::InviteClient,
        Action::ReadAuditLog,
        Action::ManagePracticeSettings,
        Action::ManageCareRelationships,
        Action::GrantClinicalAccess,
        Action::ReadClientDirectory,
        Action::ReadSchedule,
        Action::ManageSchedule,
        Action::ReviewUrgentLanguage,
        Action::ManageOwnProfile,
        Action::ChangeOwnPassword,
        Action::ChangeOwnMfa,
        Action::ChangeOwnEmail,
        Action::ReadOwnAccessLedger,
        Action::ExportOwnData,
        Action::ManagePractices,
        Action::ReadPlatformHealth,
    ];

    /// The kind of the action (drives the MFA rule and audit).
    pub fn kind(self) -> ActionKind {
        use Action::*;
        match self {
            ReadClinicalRecord
            | WriteClinicalRecord
            | ReadNotes
            | WriteNotes
            | SignNote
            | AddendNote
            | ReadMeasures
            | WriteMeasures
            | AdministerMeasures
            | ReadPlan
            | WritePlan
            | ReadFormulation
            | WriteFormulation
            | ReadMessages
            | SendMessage
            | SubmitOwnMeasures
            | ReadRecordAccessLedger
            | ExportClientRecord
            | BreakGlassOpen
            | ReadPsychotherapyNote
            | CosignNote
            | ReadSafetyPlan
            | WriteSafetyPlan
            | ReadHomework
            | AssignHomework
            | CompleteOwnHomework
            | CompleteOwnIntake
            | ReadGroupMember
            | WriteGroupNote => ActionKind::Clinical,
            ManagePracticeUsers
            | InviteStaff
            | InviteClient
            | ReadAuditLog
            | ManagePracticeSettings
            | ManageCareRelationships
            | GrantClinicalAccess
            | ReadClientDirectory
            | ReadSchedule
            | ManageSchedule
            | ReviewUrgentLanguage => ActionKind::Administrative,
            ManageOwnProfile | ChangeOwnPassword | ChangeOwnMfa | ChangeOwnEmail
            | ReadOwnAccessLedger | ExportOwnData => ActionKind::SelfService,
            ManagePractices | ReadPlatformHealth => ActionKind::Platform,
        }
    }

    /// True for actions that only read (audit records them as reads).
    pub fn is_read(self) -> bool {
        use Action::*;
        matches!(
            self,
            ReadClinicalRecord
                | ReadNotes
                | ReadPsychotherapyNote
                | ReadSafetyPlan
                | ReadHomework
                | ReadGroupMember
                | ReadMeasures
                | ReadPlan
                | ReadFormulation
                | ReadMessages
                | ReadRecordAccessLedger
                | ReadAuditLog
                | ReadClientDirectory
                | ReadSchedule
                | ReadOwnAccessLedger
                | ReadPlatformHealth
        )
    }

    /// Actions that demand a recent re-authentication (G10).
    pub fn requires_reauth(self) -> bool {
        use Action::*;
        matches!(
            self,
            ExportClientRecord
                | ExportOwnData
                | BreakGlassOpen
                | ChangeOwnMfa
                | ChangeOwnEmail
                | GrantClinicalAccess
        )
    }

    /// Stable snake_case name, used in audit events.
    pub fn as_str(self) -> &'static str {
        use Action::*;
        match self {
            ReadClinicalRecord => "read_clinical_record",
            WriteClinicalRecord => "write_clinical_record",
            ReadNotes => "read_notes",
            WriteNotes => "write_notes",
            SignNote => "sign_note",
            AddendNote => "addend_note",
            ReadMeasures => "read_measures",
            WriteMeasures => "write_measures",
            AdministerMeasures => "administer_measures",
            ReadPlan => "read_plan",
            WritePlan => "write_plan",
            ReadFormulation => "read_formulation",
            WriteFormulation => "write_formulation",
            ReadMessages => "read_messages",
            SendMessage => "send_message",
            SubmitOwnMeasures => "submit_own_measures",
            ReadRecordAccessLedger => "read_record_access_ledger",
            ExportClientRecord => "export_client_record",
            BreakGlassOpen => "break_glass_open",
            ReadPsychotherapyNote => "read_psychotherapy_note",
            CosignNote => "cosign_note",
            ReadSafetyPlan => "read_safety_plan",
            WriteSafetyPlan => "write_safety_plan",
            ReadHomework => "read_homework",
            AssignHomework => "assign_homework",
            CompleteOwnHomework => "complete_own_homework",
            CompleteOwnIntake => "complete_own_intake",
            ReadGroupMember => "read_group_member",
            WriteGroupNote => "write_group_note",
            ManagePracticeUsers => "manage_practice_users",
            InviteStaff => "invite_staff",
            InviteClient => "invite_client",
            ReadAuditLog => "read_audit_log",
            ManagePracticeSettings => "manage_practice_settings",
            ManageCareRelationships => "manage_care_relationships",
            GrantClinicalAccess => "grant_clinical_access",
            ReadClientDirectory => "read_client_directory",
            ReadSchedule => "read_schedule",
            ManageSchedule => "manage_schedule",
            ReviewUrgentLanguage => "review_urgent_language",
            ManageOwnProfile => "manage_own_profile",
            ChangeOwnPassword => "change_own_password",
            ChangeOwnMfa => "change_own_mfa",
            ChangeOwnEmail => "change_own_email",
            ReadOwnAccessLedger => "read_own_access_ledger",
            ExportOwnData => "export_own_data",
            ManagePractices => "manage_practices",
            ReadPlatformHealth => "read_platform_health",
        }
    }
}

/// The object a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// The practice the object belongs to; `None` for platform-level objects.
    pub practice_id: Option<PracticeId>,
    /// The client whose record the object is part of, if any.
    pub client_id: Option<ClientId>,
    /// The account that owns the object (own profile, own appointment), if any.
    pub owner: Option<UserId>,
}

impl Resource {
    /// A platform-level object (practices list, platform health).
    pub fn platform() -> Self {
        Self {
            practice_id: None,
            client_id: None,
            owner: None,
        }
    }

    /// A practice-level object (settings, user list, audit log, schedule).
    pub fn practice(practice_id: PracticeId) -> Self {
        Self {
            practice_id: Some(practice_id),
            client_id: None,
            owner: None,
        }
    }

    /// Part of one client's record.
    pub fn client_record(practice_id: PracticeId, client_id: ClientId) -> Self {
        Self {
            practice_id: Some(practice_id),
            client_id: Some(client_id),
            owner: None,
        }
    }

    /// A user's own account object (profile, credentials).
    pub fn account(practice_id: Option<PracticeId>, owner: UserId) -> Self {
        Self {
            practice_id,
            client_id: None,
            owner: Some(owner),
        }
    }

    /// The same resource, owned by `owner`.
    pub fn owned_by(self, owner: UserId) -> Self {
        Self {
            owner: Some(owner),
            ..self
        }
    }
}

/// The policy's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Visible but not permitted (same practice): HTTP 403.
    Deny,
    /// Not visible to this actor (another practice, another client's record):
    /// HTTP 404 with the same body as a truly missing object.
    NotFound,
    /// A staff session must complete its second factor first: HTTP 401 + MFA prompt.
    RequiresMfa,
    /// A sensitive action needs a fresh credential: HTTP 401 + re-auth prompt.
    RequiresReauth,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// The HTTP status the web layer answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Decision::Allow => 200,
            Decision::Deny => 403,
            Decision::NotFound => 404,
            Decision::RequiresMfa | Decision::RequiresReauth => 401,
        }
    }

    /// Stable name for the audit `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allowed",
            Decision::Deny => "denied",
            Decision::NotFound => "not_found",
            Decision::RequiresMfa => "requires_mfa",
            Decision::RequiresReauth => "requires_reauth",
        }
    }
}

/// Decide whether `actor` may perform `action` on `resource`. Pure and total.
pub fn authorize(actor: &Actor, action: Action, resource: &Resource) -> Decision {
    // 1. Tenancy: another practice's objects do not exist for this actor.
    if let Some(practice) = resource.practice_id {
        if actor.practice_id != Some(practice) {
            return Decision::NotFound;
        }
    }
    // A client never learns anything about another client's record.
    if actor.role == Role::Client {
        if let Some(client) = resource.client_id {
            if actor.client_id != Some(client) {
                return Decision::NotFound;
            }
        }
    }
    let kind = action.kind();
    // 2. Before the second factor, a session may only enrol the first one
    // (a stolen password must not be enough to replace an enrolled factor,
    // change the password or e-mail, or reach any data).
    let enrolling_first_factor = action == Action::ChangeOwnMfa && !actor.mfa_enrolled;
    if !actor.mfa_satisfied && !enrolling_first_factor {
        return Decision::RequiresMfa;
    }
    // 3. Role and relationship.
    let decision = match kind {
        ActionKind::Clinical => clinical(actor, action, resource),
        ActionKind::Administrative => administrative(actor, action, resource),
        ActionKind::SelfService => self_service(actor, action, resource),
        ActionKind::Platform => platform(actor, resource),
    };
    // 4. Fresh credentials for sensitive actions.
    if decision == Decision::Allow && action.requires_reauth() && !actor.recently_reauthenticated()
    {
        return Decision::RequiresReauth;
    }
    decision
}

fn allow_if(condition: bool) -> Decision {
    if condition {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

fn clinical(actor: &Actor, action: Action, resource: &Resource) -> Decision {
    use Action::*;
    // Clinical objects always belong to a practice and a client.
    let Some(client) = resource.client_id else {
        return Decision::Deny;
    };
    if resource.practice_id.is_none() {
        return Decision::Deny;
    }
    match actor.role {
        // Tenancy and "own record" were checked in `authorize`.
        Role::Client => allow_if(matches!(
            action,
            ReadMeasures
                | SubmitOwnMeasures
                | ReadPlan
                | ReadSafetyPlan
                | ReadHomework
                | CompleteOwnHomework
                | CompleteOwnIntake
                | ReadMessages
                | SendMessage
                | ReadRecordAccessLedger
        )),
        Role::Operator => Decision::Deny,
        // "Who opened this record, when" (ids and times, no content) is for
        // the people who run the practice as well as the treating team.
        _ if action == ReadRecordAccessLedger && actor.role.is_practice_admin() => Decision::Allow,
        Role::PracticeAdmin => allow_if(
            actor.granted_clinical_access
                && action.is_read()
                && !matches!(action, ReadNotes | ReadPsychotherapyNote | ReadGroupMember),
        ),
        Role::Clinician | Role::Supervisor | Role::PracticeOwner => {
            if matches!(
                action,
                SubmitOwnMeasures | CompleteOwnHomework | CompleteOwnIntake
            ) {
                return Decision::Deny;
            }
            let relationship = actor.relationship_to(client);
            // A group's facilitators (the web layer sets the resource's
            // owner to the actor when they run the member's group) read and
            // write the member's group notes without a care relationship.
            let facilitates = resource.owner == Some(actor.user_id);
            if action == WriteGroupNote {
                return allow_if(facilitates);
            }
            if action == ReadGroupMember && facilitates {
                return Decision::Allow;
            }
            if action == ReadPsychotherapyNote {
                // Private process notes: the treating author, nobody else.
                return allow_if(
                    relationship == Some(CareRole::Treating)
                        && resource.owner == Some(actor.user_id),
                );
            }
            match relationship {
                Some(CareRole::Treating) => {
                    // Break-glass is for those without a relationship; a
                    // co-signature is the supervisor's.
                    allow_if(!matches!(action, BreakGlassOpen | CosignNote))
                }
                // A supervisor reads, co-signs and may administer a clinician-rated
                // form (a risk assessment cannot wait for the treating clinician).
                Some(CareRole::Supervising) => {
                    allow_if(action.is_read() || matches!(action, CosignNote | AdministerMeasures))
                }
                None if action == BreakGlassOpen => Decision::Allow,
                None if actor.has_break_glass(client) => allow_if(
                    action.is_read() && action != ReadRecordAccessLedger
                        || matches!(action, WriteNotes | WriteClinicalRecord),
                ),
                None => Decision::Deny,
            }
        }
    }
}

fn administrative(actor: &Actor, action: Action, resource: &Resource) -> Decision {
    use Action::*;
    if resource.practice_id.is_none() {
        return Decision::Deny;
    }
    let role = actor.role;
    match action {
        ManagePracticeUsers | ManagePracticeSettings | ManageCareRelationships | ReadAuditLog => {
            allow_if(role.is_practice_admin())
        }
        InviteStaff | GrantClinicalAccess => allow_if(role == Role::PracticeOwner),
        InviteClient | ReviewUrgentLanguage => allow_if(role.is_clinical()),
        ReadClientDirectory => match resource.client_id {
            _ if role.is_practice_admin() => Decision::Allow,
            Some(client) if role.is_clinical() => {
                allow_if(actor.relationship_to(client).is_some() || actor.has_break_glass(client))
            }
            _ => Decision::Deny,
        },
        ReadSchedule | ManageSchedule => {
            if role.is_practice_admin() {
                return Decision::Allow;
            }
            let own = resource.owner == Some(actor.user_id);
            match role {
                // A client sees and books their own appointments only
                // (another client's were already NotFound above).
                Role::Client => allow_if(own || resource.client_id.is_some()),
                Role::Clinician | Role::Supervisor => {
                    let treats = resource
                        .client_id
                        .is_some_and(|c| actor.relationship_to(c).is_some());
                    // The practice calendar (free/busy) is visible to clinicians.
                    allow_if(
                        own || treats
                            || (action == ReadSchedule
                                && resource.client_id.is_none()
                                && resource.owner.is_none()),
                    )
                }
                _ => Decision::Deny,
            }
        }
        _ => Decision::Deny,
    }
}

fn self_service(actor: &Actor, action: Action, resource: &Resource) -> Decision {
    use Action::*;
    match action {
        ReadOwnAccessLedger | ExportOwnData => {
            // The record in question is the actor's own client record.
            let own_record = actor.role == Role::Client
                && resource.client_id.is_some()
                && resource.client_id == actor.client_id;
            if own_record {
                Decision::Allow
            } else if actor.role == Role::Client {
                Decision::NotFound
            } else {
                Decision::Deny
            }
        }
        _ => {
            if resource.owner == Some(actor.user_id) {
                Decision::Allow
            } else {
                // Another person's account is not something to reveal.
                Decision::NotFound
            }
        }
    }
}

fn platform(actor: &Actor, resource: &Resource) -> Decision {
    allow_if(actor.role == Role::Operator && resource.practice_id.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).single().unwrap()
    }

    /// The fixed world of the matrix: practice P with clients A and B, practice Q.
    struct World {
        p: PracticeId,
        q: PracticeId,
        a: ClientId,
        b: ClientId,
        a_user: UserId,
    }

    fn world() -> World {
        World {
            p: PracticeId::random(),
            q: PracticeId::random(),
            a: ClientId::random(),
            b: ClientId::random(),
            a_user: UserId::random(),
        }
    }

    /// Named personas of G1, each fully authenticated (MFA done, re-authenticated now).
    fn persona(w: &World, name: &str) -> Actor {
        let now = t0();
        let staff = |role| Actor {
            mfa_satisfied: true,
            reauthenticated_at: Some(now),
            ..Actor::staff(UserId::random(), w.p, role, now)
        };
        match name {
            "client_a" => Actor {
                reauthenticated_at: Some(now),
                ..Actor::client(w.a_user, w.p, w.a, now)
            },
            "client_b" => Actor {
                reauthenticated_at: Some(now),
                ..Actor::client(UserId::random(), w.p, w.b, now)
            },
            "treating" => Actor {
                relationships: vec![CareLink {
                    client_id: w.a,
                    kind: CareRole::Treating,
                }],
                ..staff(Role::Clinician)
            },
            "supervisor" => Actor {
                relationships: vec![CareLink {
                    client_id: w.a,
                    kind: CareRole::Supervising,
                }],
                ..staff(Role::Supervisor)
            },
            "non_treating" => Actor {
                relationships: vec![CareLink {
                    client_id: w.b,
                    kind: CareRole::Treating,
                }],
                ..staff(Role::Clinician)
            },
            "break_glass" => Actor {
                break_glass: vec![BreakGlassGrant::opened(w.a, now - Duration::minutes(10))],
                ..staff(Role::Clinician)
            },
            "expired_glass" => Actor {
                break_glass: vec![BreakGlassGrant::opened(
                    w.a,
                    now - Duration::minutes(BREAK_GLASS_MINUTES),
                )],
                ..staff(Role::Clinician)
            },
            "other_practice" => Actor {
                practice_id: Some(w.q),
                relationships: vec![CareLink {
                    client_id: w.a,
                    kind: CareRole::Treating,
                }],
                ..staff(Role::Clinician)
            },
            "admin" => staff(Role::PracticeAdmin),
            "admin_granted" => Actor {
                granted_clinical_access: true,
                ..staff(Role::PracticeAdmin)
            },
            "owner" => staff(Role::PracticeOwner),
            "operator" => Actor {
                mfa_satisfied: true,
                reauthenticated_at: Some(now),
                ..Actor::operator(UserId::random(), now)
            },
            "treating_no_mfa" => Actor {
                mfa_satisfied: false,
                ..persona(w, "treating")
            },
            other => panic!("unknown persona {other}"),
        }
    }

    const PERSONAS: [&str; 13] = [
        "client_a",
        "client_b",
        "treating",
        "supervisor",
        "non_treating",
        "break_glass",
        "expired_glass",
        "other_practice",
        "admin",
        "admin_granted",
        "owner",
        "operator",
        "treating_no_mfa",
    ];

    fn code(d: Decision) -> char {
        match d {
            Decision::Allow => 'A',
            Decision::Deny => 'D',
            Decision::NotFound => 'N',
            Decision::RequiresMfa => 'M',
            Decision::RequiresReauth => 'R',
        }
    }

    /// The declared policy for client A's record in practice P.
    /// Columns follow PERSONAS: client_a, client_b, treating, supervisor,
    /// non_treating, break_glass, expired_glass, other_practice, admin,
    /// admin_granted, owner, operator, treating_no_mfa.
    /// A = allow, D = deny (403), N = not found (404), M = requires MFA.
    const CLIENT_RECORD_MATRIX: [(Action, &str); 29] = [
        (Action::ReadClinicalRecord, /*     */ "DNAADADNDADNM"),
        (Action::WriteClinicalRecord, /*    */ "DNADDADNDDDNM"),
        (Action::ReadNotes, /*              */ "DNAADADNDDDNM"),
        (Action::WriteNotes, /*             */ "DNADDADNDDDNM"),
        (Action::SignNote, /*               */ "DNADDDDNDDDNM"),
        (Action::AddendNote, /*             */ "DNADDDDNDDDNM"),
        (Action::ReadMeasures, /*           */ "ANAADADNDADNM"),
        (Action::WriteMeasures, /*          */ "DNADDDDNDDDNM"),
        (Action::AdministerMeasures, /*     */ "DNAADDDNDDDNM"),
        (Action::ReadPlan, /*               */ "ANAADADNDADNM"),
        (Action::WritePlan, /*              */ "DNADDDDNDDDNM"),
        (Action::ReadFormulation, /*        */ "DNAADADNDADNM"),
        (Action::WriteFormulation, /*       */ "DNADDDDNDDDNM"),
        (Action::ReadMessages, /*           */ "ANAADADNDADNM"),
        (Action::SendMessage, /*            */ "ANADDDDNDDDNM"),
        (Action::SubmitOwnMeasures, /*      */ "ANDDDDDNDDDNM"),
        (Action::ReadRecordAccessLedger, /* */ "ANAADDDNAAANM"),
        (Action::ExportClientRecord, /*     */ "DNADDDDNDDDNM"),
        (Action::BreakGlassOpen, /*         */ "DNDDAAANDDANM"),
        // No owner on the resource: nobody is the author, so nobody reads it.
        (Action::ReadPsychotherapyNote, /*  */ "DNDDDDDNDDDNM"),
        (Action::CosignNote, /*             */ "DNDADDDNDDDNM"),
        (Action::ReadSafetyPlan, /*         */ "ANAADADNDADNM"),
        (Action::WriteSafetyPlan, /*        */ "DNADDDDNDDDNM"),
        (Action::ReadHomework, /*           */ "ANAADADNDADNM"),
        (Action::AssignHomework, /*         */ "DNADDDDNDDDNM"),
        (Action::CompleteOwnHomework, /*    */ "ANDDDDDNDDDNM"),
        (Action::CompleteOwnIntake, /*      */ "ANDDDDDNDDDNM"),
        // No owner: nobody facilitates; the member's care team reads.
        (Action::ReadGroupMember, /*        */ "DNAADADNDDDNM"),
        (Action::WriteGroupNote, /*         */ "DNDDDDDNDDDNM"),
    ];

    #[test]
    fn client_record_matrix_matches_declared_policy() {
        let w = world();
        let resource = Resource::client_record(w.p, w.a);
        let mut failures = Vec::new();
        for (action, row) in CLIENT_RECORD_MATRIX {
            let expected: Vec<char> = row.chars().collect();
            assert_eq!(expected.len(), PERSONAS.len(), "row {action:?}");
            for (i, name) in PERSONAS.iter().enumerate() {
                let got = code(authorize(&persona(&w, name), action, &resource));
                if got != expected[i] {
                    failures.push(format!(
                        "{action:?} × {name}: expected {} got {got}",
                        expected[i]
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn private_psychotherapy_notes_open_for_their_treating_author_only() {
        let w = world();
        let treating = persona(&w, "treating");
        let supervisor = persona(&w, "supervisor");
        let by = |owner| Resource {
            owner: Some(owner),
            ..Resource::client_record(w.p, w.a)
        };
        let mine = by(treating.user_id);
        assert_eq!(
            authorize(&treating, Action::ReadPsychotherapyNote, &mine),
            Decision::Allow
        );
        // Someone else's note, even for the treating clinician: denied.
        assert_eq!(
            authorize(
                &treating,
                Action::ReadPsychotherapyNote,
                &by(supervisor.user_id)
            ),
            Decision::Deny
        );
        // The supervisor reads progress notes, never the private ones.
        assert_eq!(
            authorize(&supervisor, Action::ReadPsychotherapyNote, &mine),
            Decision::Deny
        );
        assert_eq!(
            authorize(&supervisor, Action::ReadNotes, &mine),
            Decision::Allow
        );
        for name in ["break_glass", "admin_granted", "owner", "client_a"] {
            assert_ne!(
                authorize(&persona(&w, name), Action::ReadPsychotherapyNote, &mine),
                Decision::Allow,
                "{name}"
            );
        }
    }

    #[test]
    fn group_facilitators_reach_their_members_group_record_only() {
        let w = world();
        let facilitator = persona(&w, "non_treating");
        let theirs = Resource::client_record(w.p, w.a).owned_by(facilitator.user_id);
        for action in [Action::ReadGroupMember, Action::WriteGroupNote] {
            assert_eq!(authorize(&facilitator, action, &theirs), Decision::Allow);
        }
        // Facilitating gives nothing else of the member's record.
        for action in [
            Action::ReadNotes,
            Action::ReadClinicalRecord,
            Action::ReadMeasures,
        ] {
            assert_eq!(authorize(&facilitator, action, &theirs), Decision::Deny);
        }
        // Another clinician's group (owner is that facilitator): denied.
        let other = Resource::client_record(w.p, w.a).owned_by(UserId::random());
        assert_eq!(
            authorize(&facilitator, Action::WriteGroupNote, &other),
            Decision::Deny
        );
        // Another practice: not found; no second factor: MFA first.
        let elsewhere = Resource::client_record(w.q, w.a).owned_by(facilitator.user_id);
        assert_eq!(
            authorize(&facilitator, Action::ReadGroupMember, &elsewhere),
            Decision::NotFound
        );
        let unverified = Actor {
            mfa_satisfied: false,
            ..facilitator.clone()
        };
        assert_eq!(
            authorize(&unverified, Action::WriteGroupNote, &theirs),
            Decision::RequiresMfa
        );
        // The member themself never reads the group notes.
        let member = persona(&w, "client_a");
        let own = Resource::client_record(w.p, w.a).owned_by(member.user_id);
        assert_eq!(
            authorize(&member, Action::ReadGroupMember, &own),
            Decision::Deny
        );
    }

    #[test]
    fn every_clinical_action_has_a_matrix_row() {
        for action in Action::ALL {
            if action.kind() == ActionKind::Clinical {
                assert!(
                    CLIENT_RECORD_MATRIX.iter().any(|(a, _)| *a == action),
                    "{action:?} has no row in the policy matrix"
                );
            }
        }
    }

    /// Practice-level (administrative) actions on practice P, no client named.
    const PRACTICE_MATRIX: [(Action, &str); 11] = [
        (Action::ManagePracticeUsers, /*     */ "DDDDDDDNAAANM"),
        (Action::InviteStaff, /*             */ "DDDDDDDNDDANM"),
        (Action::InviteClient, /*            */ "DDAAAAANDDANM"),
        (Action::ReadAuditLog, /*            */ "DDDDDDDNAAANM"),
        (Action::ManagePracticeSettings, /*  */ "DDDDDDDNAAANM"),
        (Action::ManageCareRelationships, /* */ "DDDDDDDNAAANM"),
        (Action::GrantClinicalAccess, /*     */ "DDDDDDDNDDANM"),
        (Action::ReadClientDirectory, /*     */ "DDDDDDDNAAANM"),
        (Action::ReadSchedule, /*            */ "DDAAAAANAAANM"),
        (Action::ManageSchedule, /*          */ "DDDDDDDNAAANM"),
        (Action::ReviewUrgentLanguage, /*    */ "DDAAAAANDDANM"),
    ];

    #[test]
    fn practice_matrix_matches_declared_policy() {
        let w = world();
        let resource = Resource::practice(w.p);
        let mut failures = Vec::new();
        for (action, row) in PRACTICE_MATRIX {
            let expected: Vec<char> = row.chars().collect();
            for (i, name) in PERSONAS.iter().enumerate() {
                let got = code(authorize(&persona(&w, name), action, &resource));
                if got != expected[i] {
                    failures.push(format!(
                        "{action:?} × {name}: expected {} got {got}",
                        expected[i]
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
        for action in Action::ALL {
            if action.kind() == ActionKind::Administrative {
                assert!(
                    PRACTICE_MATRIX.iter().any(|(a, _)| *a == action),
                    "{action:?}"
                );
            }
        }
    }

    /// The urgent-language list is a clinical decision about the practice:
    /// every clinical role reviews it, admin-only staff (even with clinical
    /// read access granted), clients and operators never do, and another
    /// practice's list does not exist for the caller.
    #[test]
    fn urgent_language_review_is_for_the_practices_clinicians() {
        let w = world();
        let list = Resource::practice(w.p);
        for name in ["treating", "supervisor", "non_treating", "owner"] {
            let d = authorize(&persona(&w, name), Action::ReviewUrgentLanguage, &list);
            assert_eq!(d, Decision::Allow, "{name}");
        }
        for name in ["admin", "admin_granted", "client_a", "client_b"] {
            let d = authorize(&persona(&w, name), Action::ReviewUrgentLanguage, &list);
            assert_eq!(d, Decision::Deny, "{name}");
        }
        let theirs = Resource::practice(w.q);
        assert_eq!(
            authorize(
                &persona(&w, "treating"),
                Action::ReviewUrgentLanguage,
                &theirs
            ),
            Decision::NotFound
        );
        assert_eq!(
            authorize(
                &persona(&w, "treating_no_mfa"),
                Action::ReviewUrgentLanguage,
                &list
            ),
            Decision::RequiresMfa
        );
        assert!(!Action::ReviewUrgentLanguage.is_read());
        assert_eq!(
            Action::ReviewUrgentLanguage.kind(),
            ActionKind::Administrative
        );
    }

    #[test]
    fn directory_and_schedule_entries_of_one_client_follow_relationships() {
        let w = world();
        let entry = Resource::client_record(w.p, w.a);
        // Columns as PERSONAS.
        let rows = [
            (Action::ReadClientDirectory, "DNAADADNAAANM"),
            (Action::ReadSchedule, "ANAADDDNAAANM"),
            (Action::ManageSchedule, "ANAADDDNAAANM"),
        ];
        for (action, row) in rows {
            let got: String = PERSONAS
                .iter()
                .map(|n| code(authorize(&persona(&w, n), action, &entry)))
                .collect();
            assert_eq!(got, row, "{action:?}");
        }
        // A clinician's own appointment (owner = clinician) is theirs to manage.
        let me = persona(&w, "non_treating");
        let own = Resource::practice(w.p).owned_by(me.user_id);
        assert_eq!(
            authorize(&me, Action::ManageSchedule, &own),
            Decision::Allow
        );
    }

    #[test]
    fn self_service_is_own_account_only() {
        let w = world();
        for name in PERSONAS.iter().filter(|n| **n != "treating_no_mfa") {
            let actor = persona(&w, name);
            let own = Resource::account(actor.practice_id, actor.user_id);
            let someone_else = Resource::account(actor.practice_id, UserId::random());
            for action in [
                Action::ManageOwnProfile,
                Action::ChangeOwnPassword,
                Action::ChangeOwnMfa,
                Action::ChangeOwnEmail,
            ] {
                assert_eq!(
                    authorize(&actor, action, &own),
                    Decision::Allow,
                    "{name} {action:?}"
                );
                assert_eq!(
                    authorize(&actor, action, &someone_else),
                    Decision::NotFound,
                    "{name} {action:?}"
                );
            }
        }
    }

    #[test]
    fn before_mfa_a_session_may_only_enrol_a_first_factor() {
        let w = world();
        // First sign-in of a new staff member: nothing enrolled yet.
        let actor = persona(&w, "treating_no_mfa");
        let own = Resource::account(actor.practice_id, actor.user_id);
        let someone_else = Resource::account(actor.practice_id, UserId::random());
        assert_eq!(
            authorize(&actor, Action::ChangeOwnMfa, &own),
            Decision::Allow
        );
        assert_eq!(
            authorize(&actor, Action::ChangeOwnMfa, &someone_else),
            Decision::NotFound
        );
        for action in [
            Action::ManageOwnProfile,
            Action::ChangeOwnPassword,
            Action::ChangeOwnEmail,
        ] {
            assert_eq!(
                authorize(&actor, action, &own),
                Decision::RequiresMfa,
                "{action:?}"
            );
        }
        let stale = Actor {
            reauthenticated_at: None,
            ..actor.clone()
        };
        assert_eq!(
            authorize(&stale, Action::ChangeOwnMfa, &own),
            Decision::RequiresReauth
        );
        // Password known, factor enrolled but not completed (stolen password):
        // the factor cannot be replaced and nothing else is reachable.
        let attacker = Actor {
            mfa_enrolled: true,
            ..actor
        };
        for action in Action::ALL {
            for resource in [
                own,
                Resource::client_record(w.p, w.a),
                Resource::practice(w.p),
            ] {
                assert_eq!(
                    authorize(&attacker, action, &resource),
                    Decision::RequiresMfa,
                    "{action:?}"
                );
            }
        }
        // A client who enrolled a factor is held to it too.
        let client = Actor {
            mfa_enrolled: true,
            mfa_satisfied: false,
            ..persona(&w, "client_a")
        };
        assert_eq!(
            authorize(
                &client,
                Action::ReadMessages,
                &Resource::client_record(w.p, w.a)
            ),
            Decision::RequiresMfa
        );
    }

    #[test]
    fn clients_see_their_own_ledger_and_export_only() {
        let w = world();
        let a = persona(&w, "client_a");
        let own = Resource::client_record(w.p, w.a).owned_by(w.a_user);
        let other = Resource::client_record(w.p, w.b);
        for action in [Action::ReadOwnAccessLedger, Action::ExportOwnData] {
            assert_eq!(authorize(&a, action, &own), Decision::Allow);
            assert_eq!(authorize(&a, action, &other), Decision::NotFound);
            assert_eq!(
                authorize(&persona(&w, "treating"), action, &own),
                Decision::Deny,
                "{action:?} is a client's own right, staff use the clinical actions"
            );
        }
        let stale = Actor {
            reauthenticated_at: Some(t0() - Duration::minutes(REAUTH_WINDOW_MINUTES + 1)),
            ..a
        };
        assert_eq!(
            authorize(&stale, Action::ExportOwnData, &own),
            Decision::RequiresReauth
        );
        assert_eq!(
            authorize(&stale, Action::ReadOwnAccessLedger, &own),
            Decision::Allow
        );
    }

    #[test]
    fn platform_actions_are_for_operators_only() {
        let w = world();
        for name in PERSONAS {
            let actor = persona(&w, name);
            for action in [Action::ManagePractices, Action::ReadPlatformHealth] {
                let expected = if name == "operator" {
                    Decision::Allow
                } else if !actor.mfa_satisfied {
                    Decision::RequiresMfa
                } else {
                    Decision::Deny
                };
                assert_eq!(
                    authorize(&actor, action, &Resource::platform()),
                    expected,
                    "{name}"
                );
                // A platform action on a practice object is out of scope.
                let on_practice = authorize(&actor, action, &Resource::practice(w.p));
                assert_ne!(on_practice, Decision::Allow, "{name}");
            }
        }
        let op = Actor {
            mfa_satisfied: false,
            ..persona(&w, "operator")
        };
        assert_eq!(
            authorize(&op, Action::ReadPlatformHealth, &Resource::platform()),
            Decision::RequiresMfa
        );
    }

    #[test]
    fn sensitive_actions_require_recent_reauthentication() {
        let w = world();
        let resource = Resource::client_record(w.p, w.a);
        let fresh = persona(&w, "treating");
        for (minutes_ago, expected) in [
            (0, Decision::Allow),
            (REAUTH_WINDOW_MINUTES, Decision::Allow),
            (REAUTH_WINDOW_MINUTES + 1, Decision::RequiresReauth),
        ] {
            let actor = Actor {
                reauthenticated_at: Some(t0() - Duration::minutes(minutes_ago)),
                ..fresh.clone()
            };
            assert_eq!(
                authorize(&actor, Action::ExportClientRecord, &resource),
                expected,
                "{minutes_ago} min"
            );
        }
        let never = Actor {
            reauthenticated_at: None,
            ..fresh.clone()
        };
        assert_eq!(
            authorize(&never, Action::ExportClientRecord, &resource),
            Decision::RequiresReauth
        );
        // A re-authentication "in the future" (clock skew, forged) does not count.
        let future = Actor {
            reauthenticated_at: Some(t0() + Duration::minutes(1)),
            ..fresh.clone()
        };
        assert_eq!(
            authorize(&future, Action::ExportClientRecord, &resource),
            Decision::RequiresReauth
        );
        // Ordinary reads never ask for re-authentication.
        assert_eq!(
            authorize(&never, Action::ReadNotes, &resource),
            Decision::Allow
        );
        // Re-auth is not a way around a denial: a stale non-treating clinician is denied.
        let stale_other = Actor {
            reauthenticated_at: None,
            ..persona(&w, "non_treating")
        };
        assert_eq!(
            authorize(&stale_other, Action::ExportClientRecord, &resource),
            Decision::Deny
        );
        let stale_glass = Actor {
            reauthenticated_at: None,
            ..persona(&w, "non_treating")
        };
        assert_eq!(
            authorize(&stale_glass, Action::BreakGlassOpen, &resource),
            Decision::RequiresReauth
        );
    }

    #[test]
    fn break_glass_ends_exactly_at_expiry() {
        let w = world();
        let resource = Resource::client_record(w.p, w.a);
        let opened = t0();
        let mut actor = Actor {
            break_glass: vec![BreakGlassGrant::opened(w.a, opened)],
            ..persona(&w, "non_treating")
        };
        for (minute, expected) in [
            (0, Decision::Allow),
            (59, Decision::Allow),
            (60, Decision::Deny),
            (61, Decision::Deny),
        ] {
            actor.now = opened + Duration::minutes(minute);
            assert_eq!(
                authorize(&actor, Action::ReadNotes, &resource),
                expected,
                "minute {minute}"
            );
        }
        // The grant is for client A only.
        actor.now = opened;
        assert_eq!(
            authorize(
                &actor,
                Action::ReadNotes,
                &Resource::client_record(w.p, w.b)
            ),
            Decision::Allow,
            "non_treating treats B"
        );
        let c = ClientId::random();
        assert_eq!(
            authorize(&actor, Action::ReadNotes, &Resource::client_record(w.p, c)),
            Decision::Deny
        );
    }

    #[test]
    fn break_glass_needs_reason_permission_and_is_rate_limited() {
        let w = world();
        let clinician = persona(&w, "non_treating");
        let reason = "Client called crisis line; on-call needs risk history now.";
        let grant = open_break_glass(&clinician, w.p, w.a, reason, &[]).unwrap();
        assert_eq!(grant.client_id, w.a);
        assert_eq!(grant.expires_at, t0() + Duration::minutes(60));
        for bad in ["", "   ", "because", &"x".repeat(2001)] {
            assert!(matches!(
                open_break_glass(&clinician, w.p, w.a, bad, &[]),
                Err(BreakGlassError::Reason(_))
            ));
        }
        let three = [
            t0() - Duration::hours(1),
            t0() - Duration::hours(5),
            t0() - Duration::hours(23),
        ];
        assert_eq!(
            open_break_glass(&clinician, w.p, w.a, reason, &three),
            Err(BreakGlassError::RateLimited)
        );
        let old = [
            t0() - Duration::hours(25),
            t0() - Duration::hours(30),
            t0() - Duration::hours(1),
        ];
        assert!(open_break_glass(&clinician, w.p, w.a, reason, &old).is_ok());
        // Non-clinical roles, clients, other practices and the treating clinician cannot.
        for (name, expected) in [
            ("admin", "denied"),
            ("admin_granted", "denied"),
            ("client_b", "not_found"),
            ("other_practice", "not_found"),
            ("operator", "not_found"),
            ("treating", "denied"),
            ("treating_no_mfa", "requires_mfa"),
        ] {
            assert_eq!(
                open_break_glass(&persona(&w, name), w.p, w.a, reason, &[]),
                Err(BreakGlassError::NotPermitted(expected)),
                "{name}"
            );
        }
        let stale = Actor {
            reauthenticated_at: None,
            ..clinician
        };
        assert_eq!(
            open_break_glass(&stale, w.p, w.a, reason, &[]),
            Err(BreakGlassError::NotPermitted("requires_reauth"))
        );
    }

    #[test]
    fn only_the_care_team_administers_clinician_rated_forms() {
        let w = world();
        let resource = Resource::client_record(w.p, w.a);
        let decide = |name: &str, action| authorize(&persona(&w, name), action, &resource);
        // Treating clinician and supervisor administer (a risk assessment cannot wait) ...
        for name in ["treating", "supervisor"] {
            assert_eq!(
                decide(name, Action::AdministerMeasures),
                Decision::Allow,
                "{name}"
            );
        }
        // ... but only the treating clinician assigns measure schedules.
        assert_eq!(decide("supervisor", Action::WriteMeasures), Decision::Deny);
        // Nobody outside the care team: not the client, a colleague, break-glass, the
        // owner or an admin; another practice or another client sees nothing.
        for name in [
            "client_a",
            "non_treating",
            "break_glass",
            "owner",
            "admin_granted",
        ] {
            assert_eq!(
                decide(name, Action::AdministerMeasures),
                Decision::Deny,
                "{name}"
            );
        }
        for name in ["client_b", "other_practice"] {
            assert_eq!(
                decide(name, Action::AdministerMeasures),
                Decision::NotFound,
                "{name}"
            );
        }
    }

    #[test]
    fn admin_and_operator_never_get_clinical_writes() {
        let w = world();
        let resource = Resource::client_record(w.p, w.a);
        for name in ["admin", "admin_granted", "operator"] {
            let actor = persona(&w, name);
            for action in Action::ALL {
                if action.kind() == ActionKind::Clinical && !action.is_read() {
                    assert_ne!(
                        authorize(&actor, action, &resource),
                        Decision::Allow,
                        "{name} {action:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn clinical_action_without_a_client_is_denied() {
        let w = world();
        let actor = persona(&w, "treating");
        for action in Action::ALL {
            if action.kind() == ActionKind::Clinical {
                assert_eq!(
                    authorize(&actor, action, &Resource::practice(w.p)),
                    Decision::Deny,
                    "{action:?}"
                );
            }
        }
    }

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<_> = Action::ALL.iter().map(|a| a.as_str()).collect();
        for n in &names {
            assert!(n.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{n}");
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Action::ALL.len());
        for a in Action::ALL {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{}\"", a.as_str()));
        }
        for r in Role::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
    }

    #[test]
    fn decisions_map_to_http_statuses() {
        assert_eq!(Decision::NotFound.http_status(), 404);
        assert_eq!(Decision::Deny.http_status(), 403);
        assert_eq!(Decision::Allow.http_status(), 200);
        assert_eq!(Decision::RequiresMfa.http_status(), 401);
    }

    // ---------------- property tests ----------------

    fn arb_action() -> impl Strategy<Value = Action> {
        prop::sample::select(Action::ALL.to_vec())
    }

    prop_compose! {
        /// Any actor in one of the practices `practices`, with any relationships
        /// over `clients`, grants of any age, any MFA/re-auth state.
        fn arb_actor(practices: Vec<PracticeId>, clients: Vec<ClientId>, roles: Vec<Role>)(
            role in prop::sample::select(roles),
            practice in prop::sample::select(practices),
            own_client in prop::sample::select(clients.clone()),
            rels in prop::collection::vec(
                (prop::sample::select(clients.clone()), any::<bool>()), 0..3),
            glass in prop::collection::vec(
                (prop::sample::select(clients.clone()), -120i64..120), 0..2),
            mfa in any::<bool>(),
            enrolled in any::<bool>(),
            reauth in prop::option::of(-30i64..30),
            granted in any::<bool>(),
        ) -> Actor {
            let now = t0();
            Actor {
                user_id: UserId::random(),
                practice_id: if role == Role::Operator { None } else { Some(practice) },
                role,
                mfa_satisfied: mfa,
                mfa_enrolled: enrolled,
                reauthenticated_at: reauth.map(|m| now - Duration::minutes(m)),
                client_id: (role == Role::Client).then_some(own_client),
                relationships: rels.into_iter().map(|(c, treating)| CareLink {
                    client_id: c,
                    kind: if treating { CareRole::Treating } else { CareRole::Supervising },
                }).collect(),
                break_glass: glass.into_iter().map(|(c, m)| BreakGlassGrant {
                    client_id: c,
                    expires_at: now + Duration::minutes(m),
                }).collect(),
                granted_clinical_access: granted,
                now,
            }
        }
    }

    fn fixed_ids() -> (Vec<PracticeId>, Vec<ClientId>) {
        use std::sync::OnceLock;
        static IDS: OnceLock<(Vec<PracticeId>, Vec<ClientId>)> = OnceLock::new();
        IDS.get_or_init(|| {
            (
                (0..3).map(|_| PracticeId::random()).collect(),
                (0..4).map(|_| ClientId::random()).collect(),
            )
        })
        .clone()
    }

    fn arb_world_actor() -> impl Strategy<Value = Actor> {
        actor_in_roles(&Role::ALL)
    }

    fn actor_in_roles(roles: &[Role]) -> impl Strategy<Value = Actor> {
        let (p, c) = fixed_ids();
        arb_actor(p, c, roles.to_vec())
    }

    fn action_where(keep: impl Fn(Action) -> bool) -> impl Strategy<Value = Action> {
        prop::sample::select(
            Action::ALL
                .into_iter()
                .filter(|a| keep(*a))
                .collect::<Vec<_>>(),
        )
    }

    fn arb_resource() -> impl Strategy<Value = Resource> {
        let (p, c) = fixed_ids();
        (
            prop::option::of(prop::sample::select(p)),
            prop::option::of(prop::sample::select(c)),
            any::<bool>(),
        )
            .prop_map(|(practice_id, client_id, owned)| Resource {
                practice_id,
                client_id,
                owner: owned.then(UserId::random),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Another practice's object is always NotFound, whoever asks, whatever the action.
        #[test]
        fn other_practice_is_always_not_found(
            actor in arb_world_actor(), action in arb_action(), mut resource in arb_resource()
        ) {
            let other = PracticeId::random();
            resource.practice_id = Some(other);
            prop_assert_eq!(authorize(&actor, action, &resource), Decision::NotFound);
        }

        /// A client never reaches another client's data (it is not even visible).
        #[test]
        fn clients_never_reach_another_clients_data(
            actor in actor_in_roles(&[Role::Client]), action in arb_action(), resource in arb_resource()
        ) {
            if let Some(c) = resource.client_id {
                if Some(c) != actor.client_id {
                    prop_assert_eq!(authorize(&actor, action, &resource), Decision::NotFound);
                }
            }
        }

        /// No staff member reaches clinical (or administrative) data without MFA.
        #[test]
        fn no_staff_allow_without_mfa(
            actor in actor_in_roles(&Role::ALL[1..]), action in arb_action(), resource in arb_resource()
        ) {
            let actor = Actor { mfa_satisfied: false, ..actor };
            let d = authorize(&actor, action, &resource);
            if action.kind() != ActionKind::SelfService {
                prop_assert_ne!(d, Decision::Allow);
            }
        }

        /// Without a completed second factor, the only thing ever allowed is
        /// enrolling the first factor on one's own account.
        #[test]
        fn without_mfa_only_first_enrolment(
            actor in arb_world_actor(), action in arb_action(), resource in arb_resource()
        ) {
            let actor = Actor { mfa_satisfied: false, ..actor };
            if authorize(&actor, action, &resource).is_allowed() {
                prop_assert_eq!(action, Action::ChangeOwnMfa);
                prop_assert!(!actor.mfa_enrolled);
                prop_assert_eq!(resource.owner, Some(actor.user_id));
            }
        }

        /// Operators and admins without a grant never get clinical Allow.
        #[test]
        fn no_clinical_content_for_operators_or_ungranted_admins(
            actor in actor_in_roles(&[Role::Operator, Role::PracticeAdmin]),
            action in action_where(|a| a.kind() == ActionKind::Clinical && a != Action::ReadRecordAccessLedger),
            resource in arb_resource()
        ) {
            let actor = Actor { granted_clinical_access: false, ..actor };
            prop_assert_ne!(authorize(&actor, action, &resource), Decision::Allow);
        }

        /// Clinical Allow for clinical roles implies a relationship or an active grant.
        #[test]
        fn clinical_allow_implies_relationship_or_glass(
            actor in actor_in_roles(&[Role::Clinician, Role::Supervisor, Role::PracticeOwner]),
            // Opening break-glass is how one gets a grant; the ledger is ids only.
            action in action_where(|a| a.kind() == ActionKind::Clinical
                && a != Action::BreakGlassOpen && a != Action::ReadRecordAccessLedger),
            resource in arb_resource()
        ) {
            // Facilitating the member's group (owner = actor) opens only
            // the group record.
            let facilitated = Resource { owner: Some(actor.user_id), ..resource };
            for r in [resource, facilitated] {
                if authorize(&actor, action, &r).is_allowed() {
                    let c = r.client_id.unwrap();
                    let group_only = r.owner == Some(actor.user_id)
                        && matches!(action, Action::ReadGroupMember | Action::WriteGroupNote);
                    prop_assert!(
                        actor.relationship_to(c).is_some() || actor.has_break_glass(c) || group_only,
                        "{action:?}"
                    );
                }
            }
        }

        /// Sensitive actions are never allowed without a re-authentication in the window.
        #[test]
        fn sensitive_allow_implies_recent_reauth(
            actor in arb_world_actor(), action in action_where(Action::requires_reauth), resource in arb_resource()
        ) {
            if authorize(&actor, action, &resource).is_allowed() {
                prop_assert!(actor.recently_reauthenticated());
            }
        }
    }
}
