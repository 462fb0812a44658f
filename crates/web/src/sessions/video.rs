//! The session room: video (WebRTC, peer to peer) and live chat, with
//! Tapestry's own signalling over a WebSocket.
//!
//! * A participant (the appointment's clinician, or its client) asks an
//!   authorized route for a **join token**: HMAC-SHA256 over (practice,
//!   appointment, person, role, expiry), valid for [`JOIN_TOKEN_SECONDS`],
//!   issued only inside the join window (`schedule::may_join`: 15 minutes
//!   before the start to 15 minutes after the end).
//! * The WebSocket upgrade (`GET /sessions/ws?token=…`) checks the token,
//!   the appointment (still booked, still inside the window) and only then
//!   upgrades. A foreign, altered or expired token is refused (403).
//! * In the room the client waits until the clinician admits them; then the
//!   server relays SDP offers/answers and ICE candidates between the two and
//!   carries the live chat (typing indicator; every line sealed into the
//!   record and audited).
//!
//! * Group sessions use the same room as a mesh: up to
//!   [`VIDEO_MESH_LIMIT`] participants (facilitators are hosts, members are
//!   guests), one peer connection per pair. Every participant has an `id`
//!   (in `hello`); when someone is admitted, each participant already in the
//!   call gets `peer_joined {id, initiator: true}` and makes an offer to the
//!   newcomer, who gets `peer_joined {id, initiator: false}` for each of
//!   them. Signals carry `to` (sender) and `from` (relay). The seventh
//!   participant is refused (`room_full`).
//!
//! Rooms live in this process (a `Mutex<HashMap>`): every participant of one
//! appointment must reach the same instance (sticky sessions by path or a
//! single instance). Fan-out across instances with PostgreSQL LISTEN/NOTIFY
//! is not built (docs/video.md).

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::Authorized;
use crate::sessions::booking::appointment_of;
use crate::AppState;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tapestry_domain::ids::{PracticeId, UserId};
use tapestry_domain::schedule::group::{member_alias, GroupId, GroupSession, VIDEO_MESH_LIMIT};
use tapestry_domain::schedule::{self, Appointment, AppointmentId, AppointmentStatus, Format};
use tapestry_domain::user::Role;
use tapestry_store::audit_chain::{NewAuditEvent, Outcome};
use tapestry_store::{ChatLine, GroupChatLine};
use tokio::sync::mpsc;
use uuid::Uuid;

/// How long a join token opens the WebSocket for.
pub const JOIN_TOKEN_SECONDS: i64 = 120;
/// How long ephemeral TURN credentials are valid.
pub const TURN_CREDENTIAL_SECONDS: i64 = 6 * 3600;
/// The longest chat line accepted (characters).
pub const MAX_CHAT_CHARS: usize = 4000;

/// The participant's part in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomRole {
    /// The appointment's clinician: admits, starts the call.
    Host,
    /// The client: waits to be admitted.
    Guest,
}

impl RoomRole {
    fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Guest => "guest",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "host" => Some(Self::Host),
            "guest" => Some(Self::Guest),
            _ => None,
        }
    }
}

/// What a valid join token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinClaims {
    pub practice: PracticeId,
    pub appointment: AppointmentId,
    pub user: UserId,
    pub role: RoomRole,
    pub expires_at: DateTime<Utc>,
}

/// Why a join token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinTokenError {
    #[error("token: malformed")]
    Malformed,
    #[error("token: signature does not match")]
    BadSignature,
    #[error("token: expired")]
    Expired,
}

type HmacSha256 = Hmac<sha2::Sha256>;

fn signed_part(c: &JoinClaims) -> String {
    format!(
        "{}.{}.{}.{}.{}",
        c.practice,
        c.appointment,
        c.user,
        c.role.as_str(),
        c.expires_at.timestamp()
    )
}

fn mac(key: &[u8; 32], text: &str) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(key).ok()?;
    m.update(b"tapestry-join-v1|");
    m.update(text.as_bytes());
    Some(m)
}

/// Signs `claims` into a token string.
pub fn sign_join_token(key: &[u8; 32], claims: &JoinClaims) -> Option<String> {
    let body = signed_part(claims);
    let tag = mac(key, &body)?.finalize().into_bytes();
    Some(format!(
        "{body}.{}",
        data_encoding::BASE64URL_NOPAD.encode(&tag)
    ))
}

/// Checks a token's signature and expiry at `now`.
pub fn verify_join_token(
    key: &[u8; 32],
    token: &str,
    now: DateTime<Utc>,
) -> Result<JoinClaims, JoinTokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [practice, appointment, user, role, exp, tag] = parts.as_slice() else {
        return Err(JoinTokenError::Malformed);
    };
    let uuid = |s: &str| Uuid::parse_str(s).map_err(|_| JoinTokenError::Malformed);
    let claims = JoinClaims {
        practice: PracticeId::from_uuid(uuid(practice)?),
        appointment: AppointmentId::from_uuid(uuid(appointment)?),
        user: UserId::from_uuid(uuid(user)?),
        role: RoomRole::parse(role).ok_or(JoinTokenError::Malformed)?,
        expires_at: exp
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(JoinTokenError::Malformed)?,
    };
    let tag = data_encoding::BASE64URL_NOPAD
        .decode(tag.as_bytes())
        .map_err(|_| JoinTokenError::Malformed)?;
    mac(key, &signed_part(&claims))
        .ok_or(JoinTokenError::Malformed)?
        .verify_slice(&tag)
        .map_err(|_| JoinTokenError::BadSignature)?;
    if now >= claims.expires_at {
        return Err(JoinTokenError::Expired);
    }
    Ok(claims)
}

/// One ICE server entry as `RTCPeerConnection` takes it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Ephemeral TURN credentials in coturn's REST-API scheme
/// (`use-auth-secret`): username `"<expiry unix>:<user>"`, password
/// base64(HMAC-SHA1(secret, username)).
pub fn turn_credentials(secret: &str, user: &str, expires_at: DateTime<Utc>) -> (String, String) {
    let username = format!("{}:{user}", expires_at.timestamp());
    let password = match Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mut m) => {
            m.update(username.as_bytes());
            data_encoding::BASE64.encode(&m.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (username, password)
}

/// The ICE servers for one participant: STUN as configured, TURN with
/// fresh credentials when a secret is configured.
pub fn ice_servers(state: &AppState, user: UserId) -> Vec<IceServer> {
    let cfg = &state.online.config;
    let mut out = Vec::new();
    if !cfg.stun_urls.is_empty() {
        out.push(IceServer {
            urls: cfg.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    if let (false, Some(secret)) = (cfg.turn_urls.is_empty(), cfg.turn_secret.as_ref()) {
        let expires = state.clock.now() + Duration::seconds(TURN_CREDENTIAL_SECONDS);
        let (username, credential) = turn_credentials(secret, &user.to_string(), expires);
        out.push(IceServer {
            urls: cfg.turn_urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
    }
    out
}

/// What a room is for: a one-to-one appointment or a group session.
#[derive(Debug, Clone)]
pub enum RoomOf {
    Appointment(Appointment),
    Group(GroupSession),
}

impl RoomOf {
    fn id(&self) -> AppointmentId {
        match self {
            Self::Appointment(a) => a.id,
            Self::Group(g) => g.id,
        }
    }
    fn practice(&self) -> PracticeId {
        match self {
            Self::Appointment(a) => a.practice_id,
            Self::Group(g) => g.practice_id,
        }
    }
    fn open_at(&self, now: DateTime<Utc>) -> bool {
        let (status, starts, ends) = match self {
            Self::Appointment(a) => (a.status, a.starts_at, a.ends_at),
            Self::Group(g) => (g.status, g.starts_at, g.ends_at),
        };
        status == AppointmentStatus::Booked && schedule::may_join(starts, ends, now)
    }
    fn within_window(&self, now: DateTime<Utc>) -> bool {
        match self {
            Self::Appointment(a) => schedule::may_join(a.starts_at, a.ends_at, now),
            Self::Group(g) => schedule::may_join(g.starts_at, g.ends_at, now),
        }
    }
}

/// Whether `user` may hold the token's `role` in the room: the host is
/// the appointment's clinician or a facilitator of the group; a guest is
/// the appointment's client or a current member of the group.
async fn bound_to_room(state: &AppState, room: &RoomOf, user: UserId, role: RoomRole) -> bool {
    match (room, role) {
        (RoomOf::Appointment(a), RoomRole::Host) => a.clinician == user,
        (RoomOf::Appointment(a), RoomRole::Guest) => a.clinician != user,
        (RoomOf::Group(g), RoomRole::Host) => g.is_facilitator(user),
        (RoomOf::Group(g), RoomRole::Guest) => is_current_member(state, g, user).await,
    }
}

async fn is_current_member(state: &AppState, g: &GroupSession, user: UserId) -> bool {
    let Ok(Some(client)) = state.store.client_for_user(g.practice_id, user).await else {
        return false;
    };
    match state.store.memberships(g.practice_id, g.group_id).await {
        Ok(list) => list
            .iter()
            .any(|m| m.client_id == client.id && m.is_current()),
        Err(_) => false,
    }
}

/// Why the seventh participant is refused (`VIDEO_MESH_LIMIT` is 6).
pub const ROOM_FULL: &str = "This room is full: at most 6 people take part in one video session.";

fn room_full() -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "room_full", ROOM_FULL)
}

fn held_online(appt: &Appointment) -> bool {
    matches!(
        appt.appointment_type.format,
        Format::Video | Format::Chat | Format::Phone
    )
}

/// The caller's part in the appointment, or `None` for anyone else
/// (supervisors and admins may read the schedule but do not join).
fn role_in(a: &Authorized, appt: &Appointment) -> Option<RoomRole> {
    if a.caller.actor.role == Role::Client {
        (a.caller.actor.client_id == Some(appt.client_id)).then_some(RoomRole::Guest)
    } else {
        (appt.clinician == a.caller.user.id).then_some(RoomRole::Host)
    }
}

#[derive(Serialize)]
pub struct JoinGrant {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub role: RoomRole,
    pub ws_path: String,
    pub ice_servers: Vec<IceServer>,
    pub format: Format,
}

/// `POST /api/v1/clients/{id}/appointments/{appointment}/join`: a
/// short-lived join token for the appointment's own participants, inside the
/// join window.
pub async fn issue_join_token(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, appointment)): Path<(String, String)>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    let appt = appointment_of(&state, &a, &appointment).await?;
    let Some(role) = role_in(&a, &appt) else {
        return Err(ApiError::forbidden());
    };
    let now = state.clock.now();
    if appt.status != AppointmentStatus::Booked || !held_online(&appt) {
        return Err(ApiError::conflict("this appointment has no online room"));
    }
    if !schedule::may_join(appt.starts_at, appt.ends_at, now) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "room_closed",
            "The room opens 15 minutes before the start and closes 15 minutes after the end.",
        ));
    }
    grant(
        &state,
        &a,
        appt.practice_id,
        appt.id,
        role,
        appt.appointment_type.format,
    )
}

/// Signs a join token for the caller and answers with the grant.
fn grant(
    state: &AppState,
    a: &Authorized,
    practice: PracticeId,
    room: AppointmentId,
    role: RoomRole,
    format: Format,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let claims = JoinClaims {
        practice,
        appointment: room,
        user: a.caller.user.id,
        role,
        expires_at: now + Duration::seconds(JOIN_TOKEN_SECONDS),
    };
    let token = sign_join_token(state.online.join_key(), &claims).ok_or_else(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(JoinGrant {
            ws_path: format!("/sessions/ws?token={token}"),
            token,
            expires_at: claims.expires_at,
            role,
            ice_servers: ice_servers(state, a.caller.user.id),
            format,
        }),
    )
        .into_response())
}

/// The group session in the path and the caller's part in it: a
/// facilitator hosts, a current member is a guest; anyone else is refused.
async fn group_session_role(
    state: &AppState,
    a: &Authorized,
    group: &str,
    session: &str,
) -> Result<(GroupSession, RoomRole), ApiError> {
    let parse = |t: &str| Uuid::parse_str(t).map_err(|_| ApiError::not_found());
    let practice = a.caller.user.practice_id;
    let s = state
        .store
        .group_session(practice, AppointmentId::from_uuid(parse(session)?))
        .await?
        .filter(|s| s.group_id.as_uuid() == parse(group).unwrap_or_default())
        .ok_or_else(ApiError::not_found)?;
    let user = a.caller.user.id;
    if s.is_facilitator(user) {
        return Ok((s, RoomRole::Host));
    }
    if a.caller.actor.role == Role::Client && is_current_member(state, &s, user).await {
        return Ok((s, RoomRole::Guest));
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "Only the group's facilitators and current members join its sessions.",
    ))
}

/// `POST /api/v1/groups/{group}/sessions/{session}/join`: a join token
/// for a group session's facilitators and current members, inside the join
/// window, while the room has a free place.
pub async fn issue_group_join_token(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((group, session)): Path<(String, String)>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    let (s, role) = group_session_role(&state, &a, &group, &session).await?;
    if s.status != AppointmentStatus::Booked || s.appointment_type.format == Format::InPerson {
        return Err(ApiError::conflict("this session has no online room"));
    }
    if !schedule::may_join(s.starts_at, s.ends_at, state.clock.now()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "room_closed",
            "The room opens 15 minutes before the start and closes 15 minutes after the end.",
        ));
    }
    if state.online.rooms.occupancy(s.id) >= VIDEO_MESH_LIMIT {
        return Err(room_full());
    }
    grant(
        &state,
        &a,
        s.practice_id,
        s.id,
        role,
        s.appointment_type.format,
    )
}

#[derive(Deserialize)]
pub struct WsQuery {
    #[serde(default)]
    pub token: Option<String>,
}

/// `GET /sessions/ws?token=…`: the room's WebSocket. The token is checked
/// before the upgrade; a refused one never reaches the room.
pub async fn room_socket(
    State(state): State<AppState>,
    Query(q): Query<WsQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(token) = q.token else {
        return ApiError::bad_request("token: missing").into_response();
    };
    let now = state.clock.now();
    let claims = match verify_join_token(state.online.join_key(), &token, now) {
        Ok(c) => c,
        Err(e) => {
            return ApiError::new(StatusCode::FORBIDDEN, "join_refused", e.to_string())
                .into_response()
        }
    };
    let room = match state
        .store
        .appointment(claims.practice, claims.appointment)
        .await
    {
        Ok(Some(a)) => RoomOf::Appointment(a),
        Ok(None) => match state
            .store
            .group_session(claims.practice, claims.appointment)
            .await
        {
            Ok(Some(g)) => RoomOf::Group(g),
            Ok(None) => return ApiError::not_found().into_response(),
            Err(e) => return ApiError::from(e).into_response(),
        },
        Err(e) => return ApiError::from(e).into_response(),
    };
    if !bound_to_room(&state, &room, claims.user, claims.role).await || !room.open_at(now) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "join_refused",
            "The room is not open to this token.",
        )
        .into_response();
    }
    if state.online.rooms.occupancy(room.id()) >= VIDEO_MESH_LIMIT {
        return room_full().into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => return ApiError::bad_request("expected a WebSocket upgrade").into_response(),
    };
    audit_room(&state, &room, claims.user, "join_session_room").await;
    ws.on_upgrade(move |socket| run_peer(state, claims, room, socket))
}

async fn audit_room(state: &AppState, room: &RoomOf, actor: UserId, action: &str) -> bool {
    let (object_type, object_id) = match room {
        RoomOf::Appointment(a) => ("client", a.client_id.as_uuid()),
        RoomOf::Group(g) => ("group_session", g.id.as_uuid()),
    };
    let event = NewAuditEvent {
        actor: Some(actor),
        practice_id: Some(room.practice()),
        object_type: object_type.into(),
        object_id: Some(object_id),
        action: action.into(),
        outcome: Outcome::Allowed,
        at: state.clock.now(),
        request_id: String::new(),
    };
    match state.store.append_audit(event).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "room audit append failed");
            false
        }
    }
}

/// One connected participant.
struct Peer {
    conn: u64,
    user: UserId,
    role: RoomRole,
    tx: mpsc::UnboundedSender<String>,
}

#[derive(Default)]
struct Room {
    peers: Vec<Peer>,
    /// Guests the host has admitted (they stay admitted if they reconnect).
    admitted: HashSet<UserId>,
}

impl Room {
    fn is_admitted(&self, p: &Peer) -> bool {
        p.role == RoomRole::Host || self.admitted.contains(&p.user)
    }
    fn send(&self, conn: u64, msg: &serde_json::Value) {
        if let Some(p) = self.peers.iter().find(|p| p.conn == conn) {
            let _ = p.tx.send(msg.to_string());
        }
    }
    /// Sends to every admitted participant except `except`.
    fn send_admitted(&self, except: Option<u64>, msg: &serde_json::Value) {
        for p in &self.peers {
            if Some(p.conn) != except && self.is_admitted(p) {
                let _ = p.tx.send(msg.to_string());
            }
        }
    }
    /// Connects a newly admitted participant with everyone already in the
    /// call: each of them offers to the newcomer (one peer connection per
    /// pair: a full mesh).
    fn announce(&self, newcomer: u64) {
        let Some(n) = self.peers.iter().find(|p| p.conn == newcomer) else {
            return;
        };
        for p in self
            .peers
            .iter()
            .filter(|p| p.conn != newcomer && self.is_admitted(p))
        {
            let _ = p.tx.send(
                serde_json::json!({"type": "peer_joined", "id": n.conn, "role": n.role, "initiator": true})
                    .to_string(),
            );
            let _ = n.tx.send(
                serde_json::json!({"type": "peer_joined", "id": p.conn, "role": p.role, "initiator": false})
                    .to_string(),
            );
        }
    }
}

/// The live rooms of this process, by appointment.
#[derive(Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<AppointmentId, Room>>,
    next: AtomicU64,
}

impl Rooms {
    fn with<R>(&self, id: AppointmentId, f: impl FnOnce(&mut Room) -> R) -> Option<R> {
        let mut rooms = self.rooms.lock().ok()?;
        let room = rooms.entry(id).or_default();
        let out = f(room);
        if room.peers.is_empty() && room.admitted.is_empty() {
            rooms.remove(&id);
        }
        Some(out)
    }

    /// How many participants are connected to an appointment's room.
    pub fn occupancy(&self, id: AppointmentId) -> usize {
        self.rooms
            .lock()
            .ok()
            .and_then(|r| r.get(&id).map(|room| room.peers.len()))
            .unwrap_or(0)
    }

    /// Adds a participant; `None` when the room already holds
    /// [`VIDEO_MESH_LIMIT`] (checked under the rooms' lock, so two
    /// late-comers cannot both take the last place).
    fn join(&self, conn: u64, c: &JoinClaims, tx: mpsc::UnboundedSender<String>) -> bool {
        self.with(c.appointment, |room| {
            if room.peers.len() >= VIDEO_MESH_LIMIT {
                return false;
            }
            room.peers.push(Peer {
                conn,
                user: c.user,
                role: c.role,
                tx,
            });
            let me = room.peers.iter().find(|p| p.conn == conn);
            let admitted = me.is_some_and(|p| room.is_admitted(p));
            if c.role == RoomRole::Guest && !admitted {
                room.send(conn, &serde_json::json!({"type": "waiting"}));
                for p in room.peers.iter().filter(|p| p.role == RoomRole::Host) {
                    let _ = p.tx.send(serde_json::json!({"type": "knock"}).to_string());
                }
            } else if c.role == RoomRole::Host
                && room
                    .peers
                    .iter()
                    .any(|p| p.role == RoomRole::Guest && !room.is_admitted(p))
            {
                room.send(conn, &serde_json::json!({"type": "knock"}));
            }
            if admitted {
                room.announce(conn);
            }
            true
        })
        .unwrap_or(false)
    }

    /// A fresh participant id.
    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    fn leave(&self, appointment: AppointmentId, conn: u64) {
        self.with(appointment, |room| {
            room.peers.retain(|p| p.conn != conn);
            room.send_admitted(None, &serde_json::json!({"type": "peer_left", "id": conn}));
            if room.peers.is_empty() {
                room.admitted.clear();
            }
        });
    }
}

/// What a browser may send into the room.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Incoming {
    /// The host admits the waiting client.
    Admit,
    /// SDP or ICE, relayed unchanged to participant `to` (without `to`:
    /// to every other participant, as in a one-to-one room).
    Signal {
        data: serde_json::Value,
        #[serde(default)]
        to: Option<u64>,
    },
    /// A chat line (stored sealed, then sent to both).
    Chat { text: String },
    /// The typing indicator.
    Typing,
}

async fn run_peer(state: AppState, claims: JoinClaims, appt: RoomOf, socket: WebSocket) {
    use futures_util::{SinkExt as _, StreamExt as _};
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let rooms = &state.online.rooms;
    let conn = rooms.next_id();
    let hello = serde_json::json!({
        "type": "hello",
        "id": conn,
        "role": claims.role,
        "ice_servers": ice_servers(&state, claims.user),
    });
    let _ = tx.send(hello.to_string());
    if !rooms.join(conn, &claims, tx) {
        let full = serde_json::json!({"type": "room_full", "message": ROOM_FULL});
        let _ = sink.send(Message::Text(full.to_string().into())).await;
        let _ = sink.close().await;
        return;
    }
    // In a group room lines and typing carry a name: a facilitator's
    // display name, a member's first name only.
    let name = room_name(&state, &claims, &appt).await;
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    while let Some(Ok(msg)) = stream.next().await {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => break,
            _ => continue,
        };
        // The room closes with the join window.
        if !appt.within_window(state.clock.now()) {
            break;
        }
        let Ok(incoming) = serde_json::from_str::<Incoming>(&text) else {
            rooms.with(claims.appointment, |room| {
                room.send(
                    conn,
                    &serde_json::json!({"type": "error", "message": "unknown message"}),
                )
            });
            continue;
        };
        match incoming {
            Incoming::Admit => {
                rooms.with(claims.appointment, |room| {
                    if claims.role != RoomRole::Host {
                        return;
                    }
                    let waiting: Vec<(u64, UserId)> = room
                        .peers
                        .iter()
                        .filter(|p| !room.is_admitted(p))
                        .map(|p| (p.conn, p.user))
                        .collect();
                    for (conn, user) in waiting {
                        room.admitted.insert(user);
                        room.send(conn, &serde_json::json!({"type": "admitted"}));
                        room.announce(conn);
                    }
                });
            }
            Incoming::Signal { data, to } => {
                rooms.with(claims.appointment, |room| {
                    let admitted = |id: u64| {
                        room.peers
                            .iter()
                            .any(|p| p.conn == id && room.is_admitted(p))
                    };
                    if !admitted(conn) {
                        return;
                    }
                    let msg = serde_json::json!({"type": "signal", "from": conn, "data": data});
                    match to {
                        Some(to) if to != conn && admitted(to) => room.send(to, &msg),
                        Some(_) => {}
                        None => room.send_admitted(Some(conn), &msg),
                    }
                });
            }
            Incoming::Typing => {
                rooms.with(claims.appointment, |room| {
                    if room
                        .peers
                        .iter()
                        .any(|p| p.conn == conn && room.is_admitted(p))
                    {
                        room.send_admitted(
                            Some(conn),
                            &serde_json::json!({"type": "typing", "from": claims.role, "id": conn, "name": name}),
                        );
                    }
                });
            }
            Incoming::Chat { text } => {
                chat_line(&state, &claims, &appt, conn, name.as_deref(), text).await;
            }
        }
    }
    rooms.leave(claims.appointment, conn);
    writer.abort();
}

/// The name a participant shows in a group room's chat (`None` in a
/// one-to-one room, where the role says who is who).
async fn room_name(state: &AppState, c: &JoinClaims, room: &RoomOf) -> Option<String> {
    let RoomOf::Group(_) = room else {
        return None;
    };
    let user = state
        .store
        .user(room.practice(), c.user)
        .await
        .ok()
        .flatten()?;
    Some(match c.role {
        RoomRole::Host => user.display_name,
        RoomRole::Guest => member_alias(&user.display_name),
    })
}

async fn chat_line(
    state: &AppState,
    c: &JoinClaims,
    room: &RoomOf,
    conn: u64,
    name: Option<&str>,
    text: String,
) {
    let rooms = &state.online.rooms;
    let admitted = rooms
        .with(c.appointment, |room| {
            room.peers
                .iter()
                .any(|p| p.conn == conn && room.is_admitted(p))
        })
        .unwrap_or(false);
    let text = text.trim().to_string();
    let refusal = if !admitted {
        Some("You are in the waiting room.")
    } else if text.is_empty() {
        Some("The message is empty.")
    } else if text.chars().count() > MAX_CHAT_CHARS {
        Some("The message is longer than 4000 characters.")
    } else {
        None
    };
    if let Some(message) = refusal {
        rooms.with(c.appointment, |room| {
            room.send(
                conn,
                &serde_json::json!({"type": "error", "message": message}),
            )
        });
        return;
    }
    let line = ChatLine {
        id: Uuid::now_v7(),
        practice_id: room.practice(),
        appointment_id: room.id(),
        sender: c.user,
        body: text,
        sent_at: state.clock.now(),
    };
    // Stored (sealed) and audited before anyone sees it: a one-to-one line
    // in the client's record, a group line in the group's record.
    let saved = match room {
        RoomOf::Appointment(_) => state.store.append_chat_line(&line).await,
        RoomOf::Group(g) => {
            state
                .store
                .append_group_chat_line(&GroupChatLine {
                    id: line.id,
                    practice_id: g.practice_id,
                    group_id: g.group_id,
                    session_id: g.id,
                    sender: line.sender,
                    body: line.body.clone(),
                    sent_at: line.sent_at,
                })
                .await
        }
    };
    let stored = saved.is_ok() && audit_room(state, room, c.user, "live_chat_line").await;
    rooms.with(c.appointment, |room| {
        if stored {
            room.send_admitted(
                None,
                &serde_json::json!({
                    "type": "chat",
                    "id": line.id,
                    "from": c.role,
                    "name": name,
                    "text": line.body,
                    "at": line.sent_at,
                }),
            );
        } else {
            room.send(
                conn,
                &serde_json::json!({"type": "error", "message": "The message could not be saved."}),
            );
        }
    });
}

#[derive(Serialize)]
pub struct ChatLineView {
    pub id: Uuid,
    pub from: RoomRole,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// `GET /api/v1/clients/{id}/appointments/{appointment}/chat`: the live-chat
/// transcript, opened from its sealed form.
pub async fn chat_transcript(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, appointment)): Path<(String, String)>,
) -> Result<Json<Vec<ChatLineView>>, ApiError> {
    let appt = appointment_of(&state, &a, &appointment).await?;
    let lines = state
        .store
        .chat_transcript(appt.practice_id, appt.id)
        .await?;
    Ok(Json(
        lines
            .into_iter()
            .map(|l| ChatLineView {
                id: l.id,
                from: if l.sender == appt.clinician {
                    RoomRole::Host
                } else {
                    RoomRole::Guest
                },
                text: l.body,
                at: l.sent_at,
            })
            .collect(),
    ))
}

/// `GET /api/v1/groups/{group}/chat`: the group's live-chat transcript
/// across its sessions, opened from its sealed form, for the group's
/// facilitators only (members see the chat live, never the record). Each
/// read is audited.
pub async fn group_chat_transcript(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(group): Path<String>,
) -> Result<Json<Vec<GroupChatLineView>>, ApiError> {
    let practice = a.caller.user.practice_id;
    let id = group
        .parse::<Uuid>()
        .map(GroupId::from_uuid)
        .map_err(|_| ApiError::not_found())?;
    let g = state
        .store
        .group(practice, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !g.is_facilitator(a.caller.user.id) {
        return Err(ApiError::forbidden());
    }
    let lines = state.store.group_chat_transcript(practice, g.id).await?;
    let event = NewAuditEvent {
        actor: Some(a.caller.user.id),
        practice_id: Some(practice),
        object_type: "group".into(),
        object_id: Some(g.id.as_uuid()),
        action: "group_chat_transcript_read".into(),
        outcome: Outcome::Allowed,
        at: state.clock.now(),
        request_id: String::new(),
    };
    state.store.append_audit(event).await?;
    let mut names: HashMap<UserId, String> = HashMap::new();
    let mut out = Vec::with_capacity(lines.len());
    for l in lines {
        if let std::collections::hash_map::Entry::Vacant(slot) = names.entry(l.sender) {
            slot.insert(match state.store.user(practice, l.sender).await? {
                Some(u) if g.is_facilitator(u.id) => u.display_name,
                Some(u) => member_alias(&u.display_name),
                None => "—".to_string(),
            });
        }
        out.push(GroupChatLineView {
            id: l.id,
            session_id: l.session_id,
            from: if g.is_facilitator(l.sender) {
                RoomRole::Host
            } else {
                RoomRole::Guest
            },
            name: names.get(&l.sender).cloned().unwrap_or_default(),
            text: l.body,
            at: l.sent_at,
        });
    }
    Ok(Json(out))
}

#[derive(Serialize)]
pub struct GroupChatLineView {
    pub id: Uuid,
    pub session_id: AppointmentId,
    pub from: RoomRole,
    pub name: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

#[derive(askama::Template)]
#[template(path = "sessions_room.html")]
pub struct RoomPage {
    /// The header menu of the signed-in person.
    pub nav: crate::portal::Nav,
    /// Where the page asks for its join token.
    pub join_url: String,
    pub csrf: String,
    /// A group room (tiles for up to six participants, chat by name).
    pub group: bool,
    pub host: bool,
    pub summary: String,
    pub video: bool,
    pub dial_in: Option<String>,
}

/// `GET /clients/{id}/appointments/{appointment}/room`: the room page
/// (video and chat; phone sessions show the dial-in instructions).
pub async fn room_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, appointment)): Path<(String, String)>,
) -> Response {
    let appt = match appointment_of(&state, &a, &appointment).await {
        Ok(x) => x,
        Err(e) => return e.to_html(),
    };
    let Some(role) = role_in(&a, &appt) else {
        return ApiError::forbidden().to_html();
    };
    let csrf = a
        .caller
        .session()
        .map(|s| state.csrf.token_for(&s.token_hash))
        .unwrap_or_default();
    let format = appt.appointment_type.format;
    crate::pages::render(&RoomPage {
        nav: crate::portal::nav(&state, &a.caller).await,
        join_url: format!(
            "/api/v1/clients/{}/appointments/{}/join",
            appt.client_id, appt.id
        ),
        csrf,
        group: false,
        host: role == RoomRole::Host,
        summary: appt.appointment_type.summary(),
        video: format == Format::Video,
        dial_in: (format == Format::Phone).then(|| state.online.config.phone_instructions.clone()),
    })
}

/// `GET /groups/{group}/sessions/{session}/room`: a group session's room
/// for its facilitators and current members.
pub async fn group_room_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((group, session)): Path<(String, String)>,
) -> Response {
    let (s, role) = match group_session_role(&state, &a, &group, &session).await {
        Ok(x) => x,
        Err(e) => return e.to_html(),
    };
    let csrf = a
        .caller
        .session()
        .map(|x| state.csrf.token_for(&x.token_hash))
        .unwrap_or_default();
    let format = s.appointment_type.format;
    crate::pages::render(&RoomPage {
        nav: crate::portal::nav(&state, &a.caller).await,
        join_url: format!("/api/v1/groups/{group}/sessions/{}/join", s.id),
        csrf,
        group: true,
        host: role == RoomRole::Host,
        summary: s.appointment_type.summary(),
        video: format == Format::Video,
        dial_in: (format == Format::Phone).then(|| state.online.config.phone_instructions.clone()),
    })
}

fn script(body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r
}

/// `GET /static/video.js`: the room's WebRTC and signalling script.
pub async fn video_script() -> Response {
    script(include_str!("../../static/video.js"))
}

/// `GET /static/messages.js`: the compose form's attachment.
pub async fn messages_script() -> Response {
    script(include_str!("../../static/messages.js"))
}

/// `GET /static/chat.js`: the room's chat panel.
pub async fn chat_script() -> Response {
    script(include_str!("../../static/chat.js"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn claims(now: DateTime<Utc>) -> JoinClaims {
        JoinClaims {
            practice: PracticeId::random(),
            appointment: AppointmentId::random(),
            user: UserId::random(),
            role: RoomRole::Guest,
            expires_at: now + Duration::seconds(JOIN_TOKEN_SECONDS),
        }
    }

    #[test]
    fn a_join_token_opens_only_until_it_expires_and_only_unaltered() {
        let key = [7u8; 32];
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let c = claims(now);
        let t = sign_join_token(&key, &c).unwrap();
        assert_eq!(verify_join_token(&key, &t, now), Ok(c));
        // Expired at the instant of expiry.
        assert_eq!(
            verify_join_token(&key, &t, c.expires_at),
            Err(JoinTokenError::Expired)
        );
        // Another key (another server), another person, another role: refused.
        assert_eq!(
            verify_join_token(&[8u8; 32], &t, now),
            Err(JoinTokenError::BadSignature)
        );
        let other_user = t.replacen(&c.user.to_string(), &UserId::random().to_string(), 1);
        assert_eq!(
            verify_join_token(&key, &other_user, now),
            Err(JoinTokenError::BadSignature)
        );
        let host = t.replacen(".guest.", ".host.", 1);
        assert_eq!(
            verify_join_token(&key, &host, now),
            Err(JoinTokenError::BadSignature)
        );
        // Empty, huge and malformed input.
        for bad in ["", "a.b.c", &"x".repeat(100_000), "....."] {
            assert_eq!(
                verify_join_token(&key, bad, now),
                Err(JoinTokenError::Malformed)
            );
        }
    }

    #[test]
    fn the_room_full_message_names_the_mesh_limit() {
        assert!(ROOM_FULL.contains(&VIDEO_MESH_LIMIT.to_string()));
    }

    #[test]
    fn turn_credentials_follow_the_coturn_rest_scheme() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let (user, pass) = turn_credentials("north", "u1", at);
        assert_eq!(user, "1700000000:u1");
        // base64(HMAC-SHA1("north", "1700000000:u1")), 20 bytes -> 28 chars.
        assert_eq!(pass.len(), 28);
        let mut m = Hmac::<sha1::Sha1>::new_from_slice(b"north").unwrap();
        m.update(b"1700000000:u1");
        assert_eq!(
            data_encoding::BASE64.decode(pass.as_bytes()).unwrap(),
            m.finalize().into_bytes().to_vec()
        );
        // Another secret gives another password.
        assert_ne!(turn_credentials("south", "u1", at).1, pass);
    }
}
