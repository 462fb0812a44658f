//! One trait per aggregate. Both adapters implement every trait; the
//! conformance suite in `tests/it` holds them to the same behaviour.
//!
//! Every read takes the practice it is asked within: an object of another
//! practice is simply not found.

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tapestry_domain::care::CareRelationship;
use tapestry_domain::client::{Client, ClinicianProfile};
use tapestry_domain::episode::{Episode, EpisodeStatus};
use tapestry_domain::ids::{
    CareRelationshipId, ClientId, EpisodeId, PracticeId, ResponseId, UserId,
};
use tapestry_domain::practice::Practice;
use tapestry_domain::submission::Submission;
use tapestry_domain::user::{AccountStatus, User};

/// Which database engine an adapter talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[async_trait]
pub trait PracticeStore {
    async fn insert_practice(&self, practice: &Practice) -> StoreResult<()>;
    async fn practice(&self, id: PracticeId) -> StoreResult<Option<Practice>>;
    async fn practices(&self) -> StoreResult<Vec<Practice>>;
    async fn set_setting(&self, practice: PracticeId, key: &str, value: &str) -> StoreResult<()>;
    async fn setting(&self, practice: PracticeId, key: &str) -> StoreResult<Option<String>>;
    /// The practice whose setting `key` equals `value`, if any.
    async fn practice_with_setting(
        &self,
        key: &str,
        value: &str,
    ) -> StoreResult<Option<PracticeId>>;
}

/// A user with the stored password hash (PHC string), for sign-in.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: Option<String>,
}

#[async_trait]
pub trait UserStore {
    async fn insert_user(&self, user: &User, password_hash: Option<&str>) -> StoreResult<()>;
    async fn user(&self, practice: PracticeId, id: UserId) -> StoreResult<Option<User>>;
    async fn credentials_by_email(&self, email: &str) -> StoreResult<Option<Credentials>>;
    async fn users_in_practice(&self, practice: PracticeId) -> StoreResult<Vec<User>>;
    async fn set_user_status(
        &self,
        practice: PracticeId,
        id: UserId,
        status: AccountStatus,
    ) -> StoreResult<()>;
    async fn set_password_hash(
        &self,
        practice: PracticeId,
        id: UserId,
        hash: &str,
    ) -> StoreResult<()>;
    async fn count_users(&self) -> StoreResult<u64>;
}

#[async_trait]
pub trait ClientStore {
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn client(&self, practice: PracticeId, id: ClientId) -> StoreResult<Option<Client>>;
    async fn client_for_user(
        &self,
        practice: PracticeId,
        user: UserId,
    ) -> StoreResult<Option<Client>>;
    async fn clients_in_practice(&self, practice: PracticeId) -> StoreResult<Vec<Client>>;
    async fn link_client_user(
        &self,
        practice: PracticeId,
        id: ClientId,
        user: UserId,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait ClinicianStore {
    async fn upsert_clinician_profile(&self, profile: &ClinicianProfile) -> StoreResult<()>;
    async fn clinician_profile(
        &self,
        practice: PracticeId,
        user: UserId,
    ) -> StoreResult<Option<ClinicianProfile>>;
    async fn clinician_profiles(&self, practice: PracticeId) -> StoreResult<Vec<ClinicianProfile>>;
}

#[async_trait]
pub trait EpisodeStore {
    async fn insert_episode(&self, episode: &Episode) -> StoreResult<()>;
    async fn episode(&self, practice: PracticeId, id: EpisodeId) -> StoreResult<Option<Episode>>;
    async fn episodes_for_client(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<Episode>>;
    /// Moves an episode from `from` to `to` only if it is still in `from`
    /// (compare-and-set), so two concurrent moves cannot both succeed.
    async fn move_episode(
        &self,
        practice: PracticeId,
        id: EpisodeId,
        from: EpisodeStatus,
        to: EpisodeStatus,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn set_primary_clinician(
        &self,
        practice: PracticeId,
        id: EpisodeId,
        clinician: UserId,
    ) -> StoreResult<()>;
}

#[async_trait]
pub trait CareStore {
    /// Fails with a conflict if the same clinician already holds the same
    /// current role for the client.
    async fn insert_care_relationship(&self, rel: &CareRelationship) -> StoreResult<()>;
    async fn end_care_relationship(
        &self,
        practice: PracticeId,
        id: CareRelationshipId,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn care_for_clinician(
        &self,
        practice: PracticeId,
        clinician: UserId,
    ) -> StoreResult<Vec<CareRelationship>>;
    async fn care_for_client(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<CareRelationship>>;
}

/// Whether a submission was stored now or had been stored before under the
/// same idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    New(ResponseId),
    AlreadyStored(ResponseId),
}

impl Stored {
    pub fn id(self) -> ResponseId {
        match self {
            Stored::New(id) | Stored::AlreadyStored(id) => id,
        }
    }
}

#[async_trait]
pub trait SubmissionStore {
    /// Stores the submission durably; returns after commit. A retry with the
    /// same idempotency key and the same answers returns the first id; the
    /// same key with different answers is a conflict and stores nothing.
    async fn insert_submission(&self, submission: &Submission) -> StoreResult<Stored>;
    /// Stores many submissions in one transaction (group commit).
    async fn insert_submissions(&self, submissions: &[Submission]) -> StoreResult<()>;
    async fn submission(
        &self,
        practice: PracticeId,
        id: ResponseId,
    ) -> StoreResult<Option<Submission>>;
    async fn submissions_for_episode(
        &self,
        practice: PracticeId,
        episode: EpisodeId,
    ) -> StoreResult<Vec<Submission>>;
    async fn count_submissions(&self, practice: PracticeId) -> StoreResult<u64>;
}

#[async_trait]
pub trait BootstrapStore {
    async fn insert_bootstrap_token(&self, token_hash: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Uses a one-time bootstrap token: in one transaction, marks it used and
    /// creates the first practice and its owner. Fails with `NotFound` if the
    /// token is unknown or already used, leaving nothing behind.
    async fn complete_bootstrap(
        &self,
        token_hash: &str,
        practice: &Practice,
        owner: &User,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// Everything Tapestry stores, behind one handle.
#[async_trait]
pub trait Store:
    PracticeStore
    + UserStore
    + ClientStore
    + ClinicianStore
    + EpisodeStore
    + CareStore
    + SubmissionStore
    + BootstrapStore
    + crate::security::SecurityStore
    + crate::measurement::MeasurementStore
    + crate::schedule::ScheduleStore
    + crate::jobs::JobStore
    + crate::matching::MatchingStore
    + crate::portal::PortalStore
    + crate::messaging::MessagingStore
    + crate::groups::GroupStore
    + crate::records::RecordsStore
    + Send
    + Sync
{
    fn backend(&self) -> Backend;
    /// Cheap liveness check of the database connection.
    async fn ping(&self) -> StoreResult<()>;
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Closes the pool, waiting for connections to finish.
    async fn close(&self);
}
