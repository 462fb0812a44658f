//! Online sessions in the browser (issue 8): booking, the video/chat room
//! with Tapestry's own WebRTC signalling over a WebSocket, and secure
//! messages between sessions.
//!
//! * [`booking`]: availability, appointment types, rules, self-booking,
//!   recurring series, cancel/reschedule, no-shows, `.ics` files and the
//!   clinician's secret calendar feed.
//! * [`video`]: join tokens bound to appointment and person, ephemeral TURN
//!   credentials, the in-process rooms (waiting room, admission, signalling
//!   relay) and live chat whose transcript is sealed into the record.
//! * [`groups`]: group programmes (roster, capacity, group sessions on the
//!   facilitators' calendars, attendance, sealed per-member notes) and their
//!   pages.
//! * [`messages`]: threads between a client and their care team,
//!   attachments, read state, the reply-time promise, urgent-language
//!   screening and the JSON export.
//! * [`urgent_language`]: the practice's review of its urgent-language
//!   phrase list (page, add/remove, "reviewed by X on date").

pub mod booking;
pub mod groups;
pub mod messages;
pub mod pages;
pub mod urgent_language;
pub mod video;

use crate::routes::{Access, RouteSpec, Target};
use crate::AppState;
use axum::routing::{get, post, MethodRouter};
use tapestry_domain::access::Action;

/// Practice configuration for online sessions (`[webrtc]` and
/// `[sessions]` in `tapestry.toml`).
#[derive(Clone, Default)]
pub struct SessionsConfig {
    /// STUN servers offered to browsers (`stun:host:port`). Empty: none
    /// (peers on one network, or TURN only).
    pub stun_urls: Vec<String>,
    /// TURN servers (`turn:host:3478?transport=udp`, `turns:…`).
    pub turn_urls: Vec<String>,
    /// The shared secret of coturn's REST API scheme (`static-auth-secret`).
    pub turn_secret: Option<String>,
    /// The dial-in instructions shown for phone sessions.
    pub phone_instructions: String,
}

impl std::fmt::Debug for SessionsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionsConfig")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field(
                "turn_secret",
                &self.turn_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("phone_instructions", &self.phone_instructions)
            .finish()
    }
}

/// What the sessions area keeps in memory: its configuration, the key that
/// signs join tokens, and the live rooms of this process.
pub struct SessionsState {
    pub config: SessionsConfig,
    join_key: [u8; 32],
    pub rooms: video::Rooms,
}

impl SessionsState {
    /// A state with a fresh random join-token key (tokens live minutes, so
    /// a restart only makes waiting browsers ask for a new one).
    pub fn new(config: SessionsConfig) -> Self {
        use rand::RngCore as _;
        let mut join_key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut join_key);
        Self {
            config,
            join_key,
            rooms: video::Rooms::default(),
        }
    }

    pub(crate) fn join_key(&self) -> &[u8; 32] {
        &self.join_key
    }
}

impl Default for SessionsState {
    fn default() -> Self {
        Self::new(SessionsConfig::default())
    }
}

/// A number sent as a JSON number or as form text ("8"): forms send every
/// value as text.
pub(crate) fn flexible_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::Deserialize as _;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u32),
        Text(String),
    }
    match N::deserialize(d)? {
        N::Num(n) => Ok(n),
        N::Text(t) => t.trim().parse().map_err(serde::de::Error::custom),
    }
}

/// The body of a write route that takes no fields: `{}` (anything else,
/// such as a smuggled `practice_id`, is refused with 422).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

use Access::{Action as A, Public};
use Target::{
    ClientInPath, EachClient, GroupInPath, GroupMemberInPath, OwnAccount, OwnClientRecord, Practice,
};

/// The sessions area's routes.
pub const SESSIONS_ROUTES: &[RouteSpec] = &[
    r("GET", "/static/video.js", Public),
    r("GET", "/static/chat.js", Public),
    r("GET", "/static/messages.js", Public),
    // --- pages over the booking and messages API ---
    r(
        "GET",
        "/clients/{id}/booking",
        A(Action::ReadSchedule, ClientInPath),
    ),
    r(
        "GET",
        "/me/appointments",
        A(Action::ReadSchedule, OwnClientRecord),
    ),
    r("GET", "/schedule", A(Action::ReadSchedule, OwnAccount)),
    r(
        "GET",
        "/clients/{id}/messages",
        A(Action::ReadMessages, ClientInPath),
    ),
    r(
        "GET",
        "/me/messages",
        A(Action::ReadMessages, OwnClientRecord),
    ),
    r(
        "GET",
        "/messages",
        A(Action::ReadClientDirectory, EachClient),
    ),
    // The clinician's calendar feed: the secret is the token in the URL
    // (`/calendar/<token>.ics`).
    r("GET", "/calendar/{token}", Public),
    // The room's WebSocket: the join token in the query is the credential.
    r("GET", "/sessions/ws", Public),
    // --- a clinician's own schedule ---
    r(
        "GET",
        "/api/v1/me/schedule",
        A(Action::ReadSchedule, OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/schedule",
        A(Action::ManageSchedule, OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/appointment-types",
        A(Action::ManageSchedule, OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/calendar-feed",
        A(Action::ManageSchedule, OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/calendar-feed/revoke",
        A(Action::ManageSchedule, OwnAccount),
    ),
    // --- one client's appointments ---
    r(
        "GET",
        "/api/v1/clients/{id}/slots",
        A(Action::ReadSchedule, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/appointments",
        A(Action::ReadSchedule, ClientInPath),
    ),
    // The client's own time zone (their settings; their care team may set it).
    r(
        "POST",
        "/api/v1/clients/{id}/time-zone",
        A(Action::ManageSchedule, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/appointments",
        A(Action::ManageSchedule, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/appointments/{appointment}/cancel",
        A(Action::ManageSchedule, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/appointments/{appointment}/reschedule",
        A(Action::ManageSchedule, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/appointments/{appointment}/attendance",
        A(Action::ManageSchedule, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/appointments/{appointment}/ics",
        A(Action::ReadSchedule, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/appointments/{appointment}/join",
        A(Action::ReadSchedule, ClientInPath),
    ),
    r(
        "GET",
        "/clients/{id}/appointments/{appointment}/room",
        A(Action::ReadSchedule, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/appointments/{appointment}/chat",
        A(Action::ReadMessages, ClientInPath),
    ),
    // --- secure messages ---
    r(
        "GET",
        "/api/v1/clients/{id}/messages",
        A(Action::ReadMessages, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/messages",
        A(Action::SendMessage, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/messages/export",
        A(Action::ReadMessages, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/messages/{message}/attachment",
        A(Action::ReadMessages, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/messages/reply-promise",
        A(Action::SendMessage, ClientInPath),
    ),
    // --- the practice's urgent-language list (clinical review) ---
    r(
        "GET",
        "/practice/urgent-language",
        A(Action::ReviewUrgentLanguage, Practice),
    ),
    r(
        "POST",
        "/api/v1/practice/urgent-language",
        A(Action::ReviewUrgentLanguage, Practice),
    ),
    r(
        "POST",
        "/api/v1/practice/urgent-language/review",
        A(Action::ReviewUrgentLanguage, Practice),
    ),
    // --- group programmes ---
    r(
        "GET",
        "/api/v1/me/groups",
        A(Action::ReadSchedule, OwnAccount),
    ),
    r("GET", "/groups", A(Action::ReadSchedule, OwnAccount)),
    r(
        "POST",
        "/api/v1/groups",
        A(Action::ManageSchedule, OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/groups/{group}/join",
        A(Action::ManageSchedule, OwnClientRecord),
    ),
    r(
        "POST",
        "/api/v1/me/groups/{group}/leave",
        A(Action::ManageSchedule, OwnClientRecord),
    ),
    r(
        "GET",
        "/api/v1/groups/{group}",
        A(Action::ReadSchedule, GroupInPath),
    ),
    r(
        "GET",
        "/groups/{group}",
        A(Action::ReadSchedule, GroupInPath),
    ),
    r(
        "POST",
        "/api/v1/groups/{group}/members",
        A(Action::ManageSchedule, GroupInPath),
    ),
    r(
        "POST",
        "/api/v1/groups/{group}/members/{client}/remove",
        A(Action::ManageSchedule, GroupInPath),
    ),
    r(
        "POST",
        "/api/v1/groups/{group}/sessions",
        A(Action::ManageSchedule, GroupInPath),
    ),
    r(
        "POST",
        "/api/v1/groups/{group}/sessions/{session}/cancel",
        A(Action::ManageSchedule, GroupInPath),
    ),
    r(
        "POST",
        "/api/v1/groups/{group}/sessions/{session}/attendance",
        A(Action::ManageSchedule, GroupInPath),
    ),
    r(
        "GET",
        "/api/v1/groups/{group}/members/{client}/notes",
        A(Action::ReadGroupMember, GroupMemberInPath),
    ),
    r(
        "POST",
        "/api/v1/groups/{group}/members/{client}/notes",
        A(Action::WriteGroupNote, GroupMemberInPath),
    ),
    r(
        "GET",
        "/groups/{group}/members/{client}",
        A(Action::ReadGroupMember, GroupMemberInPath),
    ),
    // The group's chat transcript: its facilitators only (audited).
    r(
        "GET",
        "/api/v1/groups/{group}/chat",
        A(Action::ReadSchedule, GroupInPath),
    ),
    // A group session's room: its facilitators and current members (the
    // handler checks which; the join token binds session and person).
    r(
        "POST",
        "/api/v1/groups/{group}/sessions/{session}/join",
        A(Action::ReadSchedule, OwnAccount),
    ),
    r(
        "GET",
        "/groups/{group}/sessions/{session}/room",
        A(Action::ReadSchedule, OwnAccount),
    ),
];

/// The handler of each row of [`SESSIONS_ROUTES`].
pub fn handler(spec: &RouteSpec) -> Option<MethodRouter<AppState>> {
    Some(match (spec.method, spec.path) {
        ("GET", "/static/video.js") => get(video::video_script),
        ("GET", "/static/chat.js") => get(video::chat_script),
        ("GET", "/static/messages.js") => get(video::messages_script),
        ("GET", "/clients/{id}/booking" | "/me/appointments") => get(pages::booking_page),
        ("GET", "/schedule") => get(pages::schedule_page),
        ("GET", "/clients/{id}/messages" | "/me/messages") => get(pages::thread_page),
        ("GET", "/messages") => get(pages::threads_page),
        ("GET", "/calendar/{token}") => get(booking::calendar_feed),
        ("GET", "/sessions/ws") => get(video::room_socket),
        ("GET", "/api/v1/me/schedule") => get(booking::my_schedule),
        ("POST", "/api/v1/me/schedule") => post(booking::put_my_schedule),
        ("POST", "/api/v1/me/appointment-types") => post(booking::add_appointment_type),
        ("POST", "/api/v1/me/calendar-feed") => post(booking::new_feed_url),
        ("POST", "/api/v1/me/calendar-feed/revoke") => post(booking::revoke_feed),
        ("GET", "/api/v1/clients/{id}/slots") => get(booking::slots),
        ("GET", "/api/v1/clients/{id}/appointments") => get(booking::appointments),
        ("POST", "/api/v1/clients/{id}/time-zone") => post(booking::set_time_zone),
        ("POST", "/api/v1/clients/{id}/appointments") => post(booking::book),
        ("POST", "/api/v1/clients/{id}/appointments/{appointment}/cancel") => post(booking::cancel),
        ("POST", "/api/v1/clients/{id}/appointments/{appointment}/reschedule") => {
            post(booking::reschedule)
        }
        ("POST", "/api/v1/clients/{id}/appointments/{appointment}/attendance") => {
            post(booking::attendance)
        }
        ("GET", "/api/v1/clients/{id}/appointments/{appointment}/ics") => {
            get(booking::appointment_ics)
        }
        ("POST", "/api/v1/clients/{id}/appointments/{appointment}/join") => {
            post(video::issue_join_token)
        }
        ("GET", "/clients/{id}/appointments/{appointment}/room") => get(video::room_page),
        ("GET", "/api/v1/clients/{id}/appointments/{appointment}/chat") => {
            get(video::chat_transcript)
        }
        ("GET", "/api/v1/clients/{id}/messages") => get(messages::thread),
        ("POST", "/api/v1/clients/{id}/messages") => post(messages::send).layer(
            axum::extract::DefaultBodyLimit::max(messages::SEND_BODY_LIMIT),
        ),
        ("GET", "/api/v1/clients/{id}/messages/export") => get(messages::export),
        ("GET", "/api/v1/clients/{id}/messages/{message}/attachment") => get(messages::attachment),
        ("GET", "/practice/urgent-language") => get(urgent_language::page),
        ("POST", "/api/v1/practice/urgent-language") => post(urgent_language::edit),
        ("POST", "/api/v1/practice/urgent-language/review") => post(urgent_language::review),
        ("POST", "/api/v1/clients/{id}/messages/reply-promise") => {
            post(messages::set_reply_promise)
        }
        ("GET", "/api/v1/me/groups") => get(groups::my_groups),
        ("GET", "/groups") => get(groups::groups_page),
        ("POST", "/api/v1/groups") => post(groups::create_group),
        ("POST", "/api/v1/me/groups/{group}/join") => post(groups::join_self),
        ("POST", "/api/v1/me/groups/{group}/leave") => post(groups::leave_self),
        ("GET", "/api/v1/groups/{group}") => get(groups::group_detail),
        ("GET", "/groups/{group}") => get(groups::group_page),
        ("POST", "/api/v1/groups/{group}/members") => post(groups::add_member),
        ("POST", "/api/v1/groups/{group}/members/{client}/remove") => post(groups::remove_member),
        ("POST", "/api/v1/groups/{group}/sessions") => post(groups::schedule_session),
        ("POST", "/api/v1/groups/{group}/sessions/{session}/cancel") => {
            post(groups::cancel_session)
        }
        ("POST", "/api/v1/groups/{group}/sessions/{session}/attendance") => {
            post(groups::record_attendance)
        }
        ("GET", "/api/v1/groups/{group}/members/{client}/notes") => get(groups::member_record),
        ("POST", "/api/v1/groups/{group}/members/{client}/notes") => post(groups::write_note),
        ("GET", "/groups/{group}/members/{client}") => get(groups::member_page),
        ("GET", "/api/v1/groups/{group}/chat") => get(video::group_chat_transcript),
        ("POST", "/api/v1/groups/{group}/sessions/{session}/join") => {
            post(video::issue_group_join_token)
        }
        ("GET", "/groups/{group}/sessions/{session}/room") => get(video::group_room_page),
        _ => return None,
    })
}
