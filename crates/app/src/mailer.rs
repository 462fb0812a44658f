//! Sending e-mail: SMTP through lettre (rustls, no native TLS) when `[smtp]`
//! is configured, otherwise the demo outbox `<data_dir>/outbox/*.eml`, which
//! the operator can open with any mail reader.
//!
//! Messages are plain 7-bit text; what goes in them comes only from
//! [`tapestry_domain::notification::render`], which carries no clinical
//! content.

use crate::config::{Config, SmtpConfig, SmtpTls};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tapestry_domain::notification::EmailContent;

/// What can go wrong sending mail. Messages name the part that failed and
/// never include the message text.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp.from: '{0}' is not an e-mail address")]
    From(String),
    #[error("recipient: the stored address is not usable")]
    Recipient,
    #[error("message: {0}")]
    Build(String),
    #[error("smtp: {0}")]
    Smtp(String),
    #[error("outbox {path}: {problem}")]
    Outbox { path: String, problem: String },
}

/// Where mail goes.
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Outbox {
        dir: PathBuf,
        from: Mailbox,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp { from, .. } => write!(f, "Mailer::Smtp(from {from})"),
            Mailer::Outbox { dir, .. } => write!(f, "Mailer::Outbox({})", dir.display()),
        }
    }
}

/// The sender used by the demo outbox.
const OUTBOX_FROM: &str = "Tapestry <noreply@tapestry.invalid>";

impl Mailer {
    /// SMTP when configured, the outbox under the data directory otherwise.
    pub fn from_config(config: &Config) -> Result<Self, MailError> {
        match &config.smtp {
            Some(smtp) => Self::smtp(smtp),
            None => Self::outbox(&config.data_dir.join("outbox")),
        }
    }

    pub fn smtp(smtp: &SmtpConfig) -> Result<Self, MailError> {
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|_| MailError::From(smtp.from.clone()))?;
        let tls_params =
            || TlsParameters::new(smtp.host.clone()).map_err(|e| MailError::Smtp(e.to_string()));
        let tls = match smtp.tls {
            SmtpTls::StartTls => Tls::Required(tls_params()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.clone())
                .port(smtp.port)
                .tls(tls)
                .timeout(Some(Duration::from_secs(30)));
        if let Some((user, password)) = &smtp.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(Mailer::Smtp {
            transport: builder.build(),
            from,
        })
    }

    pub fn outbox(dir: &Path) -> Result<Self, MailError> {
        let from: Mailbox = OUTBOX_FROM
            .parse()
            .map_err(|_| MailError::From(OUTBOX_FROM.into()))?;
        Ok(Mailer::Outbox {
            dir: dir.to_path_buf(),
            from,
        })
    }

    fn message(from: &Mailbox, to: &str, content: &EmailContent) -> Result<Message, MailError> {
        let to: Mailbox = to.parse().map_err(|_| MailError::Recipient)?;
        let body = Body::new_with_encoding(content.body.clone(), ContentTransferEncoding::SevenBit)
            .map_err(|_| MailError::Build("body is not 7-bit text".into()))?;
        Message::builder()
            .from(from.clone())
            .to(to)
            .subject(content.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Build(e.to_string()))
    }

    /// Sends one message to `to`.
    pub async fn send(&self, to: &str, content: &EmailContent) -> Result<(), MailError> {
        match self {
            Mailer::Smtp { transport, from } => {
                let message = Self::message(from, to, content)?;
                transport
                    .send(message)
                    .await
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                Ok(())
            }
            Mailer::Outbox { dir, from } => {
                let message = Self::message(from, to, content)?;
                let fail = |problem: String| MailError::Outbox {
                    path: dir.display().to_string(),
                    problem,
                };
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                // UUIDv7: names sort by time of writing.
                let name = format!("{}.eml", uuid::Uuid::now_v7().simple());
                // Write then rename, so a reader never sees half a message.
                let partial = dir.join(format!(".{name}.partial"));
                tokio::fs::write(&partial, message.formatted())
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                tokio::fs::rename(&partial, dir.join(name))
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                Ok(())
            }
        }
    }
}
