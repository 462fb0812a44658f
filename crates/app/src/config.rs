//! Configuration: defaults → `tapestry.toml` → `TAPESTRY_*` environment →
//! command-line flags. Validated before anything is opened or written; every
//! problem is one line naming the setting and the fix. Secrets never appear in
//! `Debug` output or logs.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A configuration problem, one line, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

fn err(setting: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub request_timeout_secs: Option<u64>,
    pub header_read_timeout_secs: Option<u64>,
    pub max_body_bytes: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionsFile {
    pub staff_idle_minutes: Option<u32>,
    pub client_idle_minutes: Option<u32>,
    pub absolute_hours: Option<u32>,
}

/// `[smtp]`: where reminder e-mails go. Without it (the demo), mail is
/// written to `<data_dir>/outbox/*.eml` for the operator to read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SmtpFile {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: Option<String>,
    /// `starttls` (default), `implicit` (TLS from the first byte, port 465)
    /// or `none` (only for a relay on this machine).
    pub tls: Option<String>,
}

/// `[webrtc]`: the ICE servers browsers use for video sessions. Without it
/// only direct connections work (same network, or open NATs); see
/// docs/video.md for running coturn.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct WebRtcFile {
    #[serde(default)]
    pub stun_urls: Vec<String>,
    #[serde(default)]
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret` (REST-API credentials).
    pub turn_secret: Option<Secret>,
}

/// `[phone]`: what a phone session's participants are told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PhoneFile {
    /// e.g. "Call +44 20 7946 0000 and enter the code from your appointment."
    pub dial_in: Option<String>,
}

/// Validated online-session settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnlineConfig {
    pub stun_urls: Vec<String>,
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<Secret>,
    pub phone_dial_in: String,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

/// Validated SMTP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub credentials: Option<(String, Secret)>,
    pub from: String,
    pub tls: SmtpTls,
}

/// The shape of `tapestry.toml`. Unknown keys are an error.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<Secret>,
    pub listen: Option<String>,
    pub behind_proxy: Option<bool>,
    pub public_url: Option<String>,
    pub key_file: Option<PathBuf>,
    pub text_packs_dir: Option<PathBuf>,
    pub log_format: Option<String>,
    #[serde(default)]
    pub tls: TlsFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub sessions: SessionsFile,
    pub smtp: Option<SmtpFile>,
    #[serde(default)]
    pub webrtc: WebRtcFile,
    #[serde(default)]
    pub phone: PhoneFile,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database: Database,
    pub listen: SocketAddr,
    pub behind_proxy: bool,
    pub public_url: String,
    pub key_file: PathBuf,
    /// Site-supplied text packs; not read by any command yet.
    #[allow(dead_code)]
    pub text_packs_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub request_timeout_secs: u64,
    pub header_read_timeout_secs: u64,
    pub max_body_bytes: usize,
    pub staff_idle_minutes: u32,
    pub client_idle_minutes: u32,
    pub absolute_hours: u32,
    /// `None`: mail goes to the local outbox.
    pub smtp: Option<SmtpConfig>,
    /// STUN/TURN servers and phone dial-in instructions.
    pub online: OnlineConfig,
}

/// Where the data lives, validated.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(Secret),
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(dir) => write!(f, "Sqlite({})", dir.display()),
            Database::Postgres(url) => write!(f, "Postgres({})", redact_url(url.expose())),
        }
    }
}

/// A database URL with its password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_string(),
    }
}

/// Flags given on the command line; they win over everything else.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<String>,
    pub behind_proxy: bool,
    pub data_dir: Option<PathBuf>,
}

/// Every environment variable Tapestry reads. Any other `TAPESTRY_*` is an
/// error, so that a typo cannot silently fall back to a default.
pub const ENV_KEYS: &[&str] = &[
    "TAPESTRY_CONFIG",
    "TAPESTRY_DATA_DIR",
    "TAPESTRY_DATABASE_URL",
    "TAPESTRY_LISTEN",
    "TAPESTRY_BEHIND_PROXY",
    "TAPESTRY_PUBLIC_URL",
    "TAPESTRY_KEY_FILE",
    "TAPESTRY_TEXT_PACKS_DIR",
    "TAPESTRY_LOG_FORMAT",
    "TAPESTRY_LOG",
    "TAPESTRY_TLS_CERT_FILE",
    "TAPESTRY_TLS_KEY_FILE",
    "TAPESTRY_REQUEST_TIMEOUT_SECS",
    "TAPESTRY_HEADER_READ_TIMEOUT_SECS",
    "TAPESTRY_MAX_BODY_BYTES",
    "TAPESTRY_STAFF_IDLE_MINUTES",
    "TAPESTRY_CLIENT_IDLE_MINUTES",
    "TAPESTRY_ABSOLUTE_HOURS",
    "TAPESTRY_SMTP_HOST",
    "TAPESTRY_SMTP_PORT",
    "TAPESTRY_SMTP_USERNAME",
    "TAPESTRY_SMTP_PASSWORD",
    "TAPESTRY_SMTP_FROM",
    "TAPESTRY_SMTP_TLS",
    "TAPESTRY_WEBRTC_STUN_URLS",
    "TAPESTRY_WEBRTC_TURN_URLS",
    "TAPESTRY_WEBRTC_TURN_SECRET",
    "TAPESTRY_PHONE_DIAL_IN",
];

/// Known default or empty credentials that must never reach production.
const DEFAULT_PASSWORDS: &[&str] = &[
    "",
    "postgres",
    "password",
    "admin",
    "root",
    "changeme",
    "change-me",
    "secret",
    "tapestry",
    "123456",
    "12345678",
    "pass",
    "test",
];

impl Config {
    /// Loads from the config file (if any), the given environment and flags.
    pub fn load(
        config_path: Option<&Path>,
        env: &[(String, String)],
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        for (key, _) in env {
            if key.starts_with("TAPESTRY_")
                && !key.starts_with("TAPESTRY_TEST_")
                && !ENV_KEYS.contains(&key.as_str())
            {
                return Err(err(
                    key.clone(),
                    format!("unknown setting; known ones are {}", ENV_KEYS.join(", ")),
                ));
            }
        }
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let path = config_path
            .map(Path::to_path_buf)
            .or_else(|| get("TAPESTRY_CONFIG").map(PathBuf::from));
        let file = match &path {
            Some(p) => read_file(p, true)?,
            None => read_file(Path::new("tapestry.toml"), false)?,
        };
        Self::resolve(file, &get, overrides)
    }

    fn resolve(
        file: ConfigFile,
        get: &dyn Fn(&str) -> Option<String>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| get("TAPESTRY_DATA_DIR").map(PathBuf::from))
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./tapestry-data"));
        let database_url = get("TAPESTRY_DATABASE_URL")
            .or_else(|| get("DATABASE_URL"))
            .map(Secret::new)
            .or(file.database_url);
        let database = match database_url {
            None => Database::Sqlite(data_dir.clone()),
            Some(url) => validate_database_url(url)?,
        };
        let listen_text = overrides
            .listen
            .clone()
            .or_else(|| get("TAPESTRY_LISTEN"))
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            err(
                "listen",
                format!("'{listen_text}' is not an address like 127.0.0.1:8080"),
            )
        })?;
        let behind_proxy = overrides.behind_proxy
            || parse_bool("TAPESTRY_BEHIND_PROXY", get("TAPESTRY_BEHIND_PROXY"))?
                .or(file.behind_proxy)
                .unwrap_or(false);
        let cert = get("TAPESTRY_TLS_CERT_FILE")
            .map(PathBuf::from)
            .or(file.tls.cert_file);
        let key = get("TAPESTRY_TLS_KEY_FILE")
            .map(PathBuf::from)
            .or(file.tls.key_file);
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(err(
                    "tls.key_file",
                    "tls.cert_file is set but tls.key_file is not; set both or neither",
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    "tls.cert_file",
                    "tls.key_file is set but tls.cert_file is not; set both or neither",
                ))
            }
        };
        if !listen.ip().is_loopback() && tls.is_none() && !behind_proxy {
            return Err(err(
                "listen",
                format!("{listen} is reachable from other machines but no TLS is configured; set [tls] cert_file and key_file, or pass --behind-proxy when a TLS-terminating proxy is in front"),
            ));
        }
        let scheme = if tls.is_some() || behind_proxy {
            "https"
        } else {
            "http"
        };
        let public_url = get("TAPESTRY_PUBLIC_URL")
            .or(file.public_url)
            .unwrap_or_else(|| format!("{scheme}://{listen}"));
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(err(
                "public_url",
                format!("'{public_url}' must start with http:// or https://"),
            ));
        }
        let key_file = get("TAPESTRY_KEY_FILE")
            .map(PathBuf::from)
            .or(file.key_file)
            .unwrap_or_else(|| data_dir.join("tapestry.key"));
        let text_packs_dir = get("TAPESTRY_TEXT_PACKS_DIR")
            .map(PathBuf::from)
            .or(file.text_packs_dir);
        let log_format = match get("TAPESTRY_LOG_FORMAT").or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(err(
                    "log_format",
                    format!("'{other}' is not one of text, json"),
                ))
            }
        };
        let num = |k: &str,
                   v: Option<u64>,
                   default: u64,
                   min: u64,
                   max: u64|
         -> Result<u64, ConfigError> {
            let value = match get(k) {
                Some(text) => text
                    .parse::<u64>()
                    .map_err(|_| err(k, format!("'{text}' is not a whole number")))?,
                None => v.unwrap_or(default),
            };
            if value < min || value > max {
                return Err(err(k, format!("{value} is outside {min}..={max}")));
            }
            Ok(value)
        };
        let request_timeout_secs = num(
            "TAPESTRY_REQUEST_TIMEOUT_SECS",
            file.limits.request_timeout_secs,
            30,
            1,
            3600,
        )?;
        let header_read_timeout_secs = num(
            "TAPESTRY_HEADER_READ_TIMEOUT_SECS",
            file.limits.header_read_timeout_secs,
            10,
            1,
            300,
        )?;
        let max_body_bytes = num(
            "TAPESTRY_MAX_BODY_BYTES",
            file.limits.max_body_bytes.map(|b| b as u64),
            1024 * 1024,
            1024,
            256 * 1024 * 1024,
        )?;
        let staff_idle_minutes = num(
            "TAPESTRY_STAFF_IDLE_MINUTES",
            file.sessions.staff_idle_minutes.map(u64::from),
            15,
            1,
            24 * 60,
        )?;
        let client_idle_minutes = num(
            "TAPESTRY_CLIENT_IDLE_MINUTES",
            file.sessions.client_idle_minutes.map(u64::from),
            30,
            1,
            24 * 60,
        )?;
        let absolute_hours = num(
            "TAPESTRY_ABSOLUTE_HOURS",
            file.sessions.absolute_hours.map(u64::from),
            12,
            1,
            24 * 7,
        )?;
        let smtp = resolve_smtp(file.smtp.unwrap_or_default(), get)?;
        let online = resolve_online(file.webrtc, file.phone, get)?;
        Ok(Config {
            smtp,
            online,
            data_dir,
            database,
            listen,
            behind_proxy,
            public_url: public_url.trim_end_matches('/').to_string(),
            key_file,
            text_packs_dir,
            log_format,
            tls,
            request_timeout_secs,
            header_read_timeout_secs,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            staff_idle_minutes: u32::try_from(staff_idle_minutes).unwrap_or(15),
            client_idle_minutes: u32::try_from(client_idle_minutes).unwrap_or(30),
            absolute_hours: u32::try_from(absolute_hours).unwrap_or(12),
        })
    }
}

/// `[webrtc]` and `[phone]`, with `TAPESTRY_WEBRTC_*` (URL lists
/// comma-separated) and `TAPESTRY_PHONE_DIAL_IN` taking precedence.
fn resolve_online(
    webrtc: WebRtcFile,
    phone: PhoneFile,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<OnlineConfig, ConfigError> {
    let list = |key: &str, file: Vec<String>| -> Vec<String> {
        match get(key) {
            Some(v) => v
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => file,
        }
    };
    let stun_urls = list("TAPESTRY_WEBRTC_STUN_URLS", webrtc.stun_urls);
    let turn_urls = list("TAPESTRY_WEBRTC_TURN_URLS", webrtc.turn_urls);
    for u in &stun_urls {
        if !(u.starts_with("stun:") || u.starts_with("stuns:")) {
            return Err(err(
                "webrtc.stun_urls",
                format!("'{u}' must start with stun: or stuns:"),
            ));
        }
    }
    for u in &turn_urls {
        if !(u.starts_with("turn:") || u.starts_with("turns:")) {
            return Err(err(
                "webrtc.turn_urls",
                format!("'{u}' must start with turn: or turns:"),
            ));
        }
    }
    let turn_secret = get("TAPESTRY_WEBRTC_TURN_SECRET")
        .map(Secret::new)
        .or(webrtc.turn_secret);
    match (&turn_secret, turn_urls.is_empty()) {
        (None, false) => {
            return Err(err(
                "webrtc.turn_secret",
                "is required when webrtc.turn_urls is set (coturn's static-auth-secret)",
            ))
        }
        (Some(s), _) if s.expose().len() < 16 => {
            return Err(err("webrtc.turn_secret", "must be at least 16 characters"))
        }
        _ => {}
    }
    let phone_dial_in = get("TAPESTRY_PHONE_DIAL_IN")
        .or(phone.dial_in)
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(OnlineConfig {
        stun_urls,
        turn_urls,
        turn_secret,
        phone_dial_in,
    })
}

fn resolve_smtp(
    file: SmtpFile,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SmtpConfig>, ConfigError> {
    let host = get("TAPESTRY_SMTP_HOST").or(file.host);
    let Some(host) = host.filter(|h| !h.trim().is_empty()) else {
        let stray = [
            (
                "smtp.username",
                get("TAPESTRY_SMTP_USERNAME").or(file.username.clone()),
            ),
            ("smtp.from", get("TAPESTRY_SMTP_FROM").or(file.from.clone())),
        ];
        if let Some((name, _)) = stray.iter().find(|(_, v)| v.is_some()) {
            return Err(err(
                *name,
                "is set but smtp.host is not; set smtp.host or remove the [smtp] settings",
            ));
        }
        return Ok(None);
    };
    if host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(err("smtp.host", format!("'{host}' is not a host name")));
    }
    let tls = match get("TAPESTRY_SMTP_TLS").or(file.tls).as_deref() {
        None | Some("starttls") => SmtpTls::StartTls,
        Some("implicit") => SmtpTls::Implicit,
        Some("none") => SmtpTls::None,
        Some(other) => {
            return Err(err(
                "smtp.tls",
                format!("'{other}' is not one of starttls, implicit, none"),
            ))
        }
    };
    let local =
        matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1") || host.starts_with("127.");
    if tls == SmtpTls::None && !local {
        return Err(err("smtp.tls", format!("'none' is only allowed for a relay on this machine, not '{host}'; use starttls or implicit")));
    }
    let port = match get("TAPESTRY_SMTP_PORT") {
        Some(text) => text
            .parse::<u16>()
            .map_err(|_| err("smtp.port", format!("'{text}' is not a port number")))?,
        None => file.port.unwrap_or(match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 587,
            SmtpTls::None => 25,
        }),
    };
    if port == 0 {
        return Err(err("smtp.port", "0 is not a port number"));
    }
    let from = get("TAPESTRY_SMTP_FROM").or(file.from).ok_or_else(|| {
        err(
            "smtp.from",
            "is required when smtp.host is set, e.g. \"Tapestry <noreply@example.org>\"",
        )
    })?;
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(err(
            "smtp.from",
            format!("'{from}' is not an e-mail address"),
        ));
    }
    let username = get("TAPESTRY_SMTP_USERNAME").or(file.username);
    let password = get("TAPESTRY_SMTP_PASSWORD")
        .map(Secret::new)
        .or(file.password);
    let credentials = match (username, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(err(
                "smtp.password",
                "smtp.username is set but smtp.password is not",
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                "smtp.username",
                "smtp.password is set but smtp.username is not",
            ))
        }
    };
    if credentials.is_some() && tls == SmtpTls::None {
        return Err(err(
            "smtp.tls",
            "a password must not be sent without TLS; use starttls or implicit",
        ));
    }
    Ok(Some(SmtpConfig {
        host,
        port,
        credentials,
        from,
        tls,
    }))
}

fn read_file(path: &Path, required: bool) -> Result<ConfigFile, ConfigError> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
            return Ok(ConfigFile::default())
        }
        Err(e) => return Err(err(name, format!("cannot read the config file: {e}"))),
    };
    toml::from_str(&text).map_err(|e| err(name, e.message().to_string().replace('\n', " ")))
}

fn parse_bool(key: &str, value: Option<String>) -> Result<Option<bool>, ConfigError> {
    match value.as_deref() {
        None => Ok(None),
        Some("1" | "true" | "yes") => Ok(Some(true)),
        Some("0" | "false" | "no") => Ok(Some(false)),
        Some(other) => Err(err(key, format!("'{other}' is not true or false"))),
    }
}

/// Refuses empty or well-known database passwords and plain-text connections
/// to other machines.
fn validate_database_url(url: Secret) -> Result<Database, ConfigError> {
    let text = url.expose();
    let rest = text
        .strip_prefix("postgres://")
        .or_else(|| text.strip_prefix("postgresql://"))
        .ok_or_else(|| err("DATABASE_URL", format!("'{}' must start with postgres:// (leave it unset for the embedded SQLite database)", redact_url(text))))?;
    let (authority, params) = match rest.split_once('?') {
        Some((a, p)) => (a, p),
        None => (rest, ""),
    };
    let authority = authority.split('/').next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => ("", authority),
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, p),
        None => (userinfo, ""),
    };
    let socket = params.split('&').any(|kv| kv.starts_with("host=/"));
    if !socket {
        if DEFAULT_PASSWORDS.contains(&password) || password == user {
            return Err(err(
                "DATABASE_URL",
                "the database password is empty or a well-known default; create a database user with a strong password (or connect over a Unix socket with host=/run/postgresql)",
            ));
        }
        let host = if let Some(stripped) = hostport.strip_prefix('[') {
            stripped.split(']').next().unwrap_or("")
        } else {
            hostport.split(':').next().unwrap_or("")
        };
        let loopback =
            matches!(host, "localhost" | "127.0.0.1" | "::1") || host.starts_with("127.");
        let tls = params.split('&').any(|kv| {
            matches!(
                kv,
                "sslmode=require" | "sslmode=verify-ca" | "sslmode=verify-full"
            )
        });
        if !loopback && !tls {
            return Err(err("DATABASE_URL", format!("host '{host}' is not on this machine and the URL does not require TLS; add ?sslmode=verify-full")));
        }
    }
    Ok(Database::Postgres(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: &str, env: &[(&str, &str)], o: Overrides) -> Result<Config, ConfigError> {
        let f: ConfigFile =
            toml::from_str(file).map_err(|e| err("tapestry.toml", e.to_string()))?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        Config::resolve(f, &get, &o)
    }

    #[test]
    fn defaults_are_loopback_sqlite() {
        let c = load("", &[], Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.database,
            Database::Sqlite(PathBuf::from("./tapestry-data"))
        );
        assert_eq!(
            (
                c.staff_idle_minutes,
                c.client_idle_minutes,
                c.absolute_hours
            ),
            (15, 30, 12)
        );
    }

    #[test]
    fn env_beats_file_and_flags_beat_env() {
        let c = load(
            "listen = \"127.0.0.1:9000\"",
            &[("TAPESTRY_LISTEN", "127.0.0.1:9100")],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9100);
        let o = Overrides {
            listen: Some("127.0.0.1:9200".into()),
            ..Default::default()
        };
        let c = load(
            "listen = \"127.0.0.1:9000\"",
            &[("TAPESTRY_LISTEN", "127.0.0.1:9100")],
            o,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9200);
    }

    #[test]
    fn public_bind_needs_tls_or_proxy() {
        let e = load("listen = \"0.0.0.0:8080\"", &[], Overrides::default()).unwrap_err();
        assert_eq!(e.setting, "listen");
        assert!(e.problem.contains("--behind-proxy"));
        let o = Overrides {
            behind_proxy: true,
            ..Default::default()
        };
        assert!(load("listen = \"0.0.0.0:8080\"", &[], o).is_ok());
        assert!(load(
            "listen = \"0.0.0.0:8080\"\n[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"",
            &[],
            Overrides::default()
        )
        .is_ok());
        assert_eq!(
            load("[tls]\ncert_file = \"c.pem\"", &[], Overrides::default())
                .unwrap_err()
                .setting,
            "tls.key_file"
        );
    }

    #[test]
    fn weak_database_credentials_are_refused() {
        for url in [
            "postgres://tapestry@localhost/tapestry",
            "postgres://postgres:postgres@127.0.0.1/db",
            "postgres://tapestry:tapestry@127.0.0.1/db",
            "postgres://u:password@127.0.0.1/db",
        ] {
            let e = load("", &[("DATABASE_URL", url)], Overrides::default()).unwrap_err();
            assert_eq!(e.setting, "DATABASE_URL", "{url}");
            assert!(!e.to_string().contains("password@"), "secret leaked: {e}");
        }
        let remote = load(
            "",
            &[("DATABASE_URL", "postgres://u:Str0ng-Pass@db.example.org/t")],
            Overrides::default(),
        )
        .unwrap_err();
        assert!(remote.problem.contains("sslmode"));
        assert!(load(
            "",
            &[(
                "DATABASE_URL",
                "postgres://u:Str0ng-Pass@db.example.org/t?sslmode=verify-full"
            )],
            Overrides::default()
        )
        .is_ok());
        assert!(load(
            "",
            &[(
                "DATABASE_URL",
                "postgres://tapestry@/tapestry?host=/run/postgresql"
            )],
            Overrides::default()
        )
        .is_ok());
        assert_eq!(
            load("", &[("DATABASE_URL", "mysql://x")], Overrides::default())
                .unwrap_err()
                .setting,
            "DATABASE_URL"
        );
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = load(
            "",
            &[(
                "DATABASE_URL",
                "postgres://app:s3cr3t-Value@127.0.0.1:5432/t",
            )],
            Overrides::default(),
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t-Value"), "{shown}");
        assert!(shown.contains("app:***@127.0.0.1"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = toml::from_str::<ConfigFile>("lisen = \"127.0.0.1:1\"").unwrap_err();
        assert!(e.to_string().contains("lisen"));
        let e = Config::load(
            None,
            &[("TAPESTRY_LISTN".into(), "x".into())],
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(e.setting, "TAPESTRY_LISTN");
        assert_eq!(
            load(
                "",
                &[("TAPESTRY_STAFF_IDLE_MINUTES", "0")],
                Overrides::default()
            )
            .unwrap_err()
            .setting,
            "TAPESTRY_STAFF_IDLE_MINUTES"
        );
        assert_eq!(
            load(
                "",
                &[("TAPESTRY_MAX_BODY_BYTES", "lots")],
                Overrides::default()
            )
            .unwrap_err()
            .setting,
            "TAPESTRY_MAX_BODY_BYTES"
        );
        assert_eq!(
            load("log_format = \"xml\"", &[], Overrides::default())
                .unwrap_err()
                .setting,
            "log_format"
        );
        assert_eq!(
            load("listen = \"localhost\"", &[], Overrides::default())
                .unwrap_err()
                .setting,
            "listen"
        );
    }

    #[test]
    fn webrtc_servers_and_turn_secret_are_validated_and_secret() {
        let c = load("", &[], Overrides::default()).unwrap();
        assert_eq!(c.online, OnlineConfig::default());
        let file = "[webrtc]\nstun_urls = [\"stun:turn.example.org:3478\"]\nturn_urls = [\"turn:turn.example.org:3478?transport=udp\", \"turns:turn.example.org:5349\"]\nturn_secret = \"a-long-coturn-secret-42\"\n[phone]\ndial_in = \"Call +44 20 7946 0000\"\n";
        let c = load(file, &[], Overrides::default()).unwrap();
        assert_eq!(c.online.turn_urls.len(), 2);
        assert_eq!(c.online.phone_dial_in, "Call +44 20 7946 0000");
        assert!(!format!("{c:?}").contains("a-long-coturn-secret-42"));
        // The environment wins; lists are comma-separated.
        let c = load(
            file,
            &[(
                "TAPESTRY_WEBRTC_STUN_URLS",
                "stun:a.example:3478, stun:b.example:3478",
            )],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.online.stun_urls.len(), 2);
        let setting =
            |f: &str, env: &[(&str, &str)]| load(f, env, Overrides::default()).unwrap_err().setting;
        // TURN without a secret, a short secret, wrong schemes: each names its setting.
        assert_eq!(
            setting("[webrtc]\nturn_urls = [\"turn:t.example:3478\"]\n", &[]),
            "webrtc.turn_secret"
        );
        assert_eq!(
            setting(file, &[("TAPESTRY_WEBRTC_TURN_SECRET", "short")]),
            "webrtc.turn_secret"
        );
        assert_eq!(
            setting("[webrtc]\nstun_urls = [\"http://x\"]\n", &[]),
            "webrtc.stun_urls"
        );
        assert_eq!(
            setting("", &[("TAPESTRY_WEBRTC_TURN_URLS", "stun:x")]),
            "webrtc.turn_urls"
        );
    }

    #[test]
    fn smtp_is_optional_validated_and_its_password_is_secret() {
        assert_eq!(load("", &[], Overrides::default()).unwrap().smtp, None);
        let file = "[smtp]\nhost = \"mail.example.org\"\nusername = \"tapestry\"\npassword = \"s3cret-Pw\"\nfrom = \"Tapestry <noreply@example.org>\"\n";
        let c = load(file, &[], Overrides::default()).unwrap();
        let smtp = c.smtp.clone().unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, SmtpTls::StartTls));
        assert!(!format!("{c:?}").contains("s3cret-Pw"));
        let c = load(
            file,
            &[
                ("TAPESTRY_SMTP_TLS", "implicit"),
                ("TAPESTRY_SMTP_PORT", "2465"),
            ],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.smtp.map(|s| (s.port, s.tls)),
            Some((2465, SmtpTls::Implicit))
        );
        let setting =
            |f: &str, env: &[(&str, &str)]| load(f, env, Overrides::default()).unwrap_err().setting;
        assert_eq!(
            setting("[smtp]\nhost = \"mail.example.org\"\n", &[]),
            "smtp.from"
        );
        assert_eq!(setting(file, &[("TAPESTRY_SMTP_TLS", "none")]), "smtp.tls");
        assert_eq!(
            setting(file, &[("TAPESTRY_SMTP_TLS", "sometimes")]),
            "smtp.tls"
        );
        assert_eq!(setting(file, &[("TAPESTRY_SMTP_PORT", "0")]), "smtp.port");
        assert_eq!(setting("[smtp]\nfrom = \"a@b.org\"\n", &[]), "smtp.from");
        assert_eq!(
            setting("[smtp]\nhost = \"h\"\nfrom = \"not an address\"\n", &[]),
            "smtp.from"
        );
        assert!(toml::from_str::<ConfigFile>("[smtp]\nhots = \"typo\"\n").is_err());
        // A relay on this machine may go without TLS, but then without a password.
        let local = "[smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom = \"noreply@example.org\"\n";
        assert_eq!(
            load(local, &[], Overrides::default())
                .unwrap()
                .smtp
                .map(|s| s.tls),
            Some(SmtpTls::None)
        );
        assert_eq!(
            setting(
                local,
                &[
                    ("TAPESTRY_SMTP_USERNAME", "u"),
                    ("TAPESTRY_SMTP_PASSWORD", "p")
                ]
            ),
            "smtp.tls"
        );
    }
}
