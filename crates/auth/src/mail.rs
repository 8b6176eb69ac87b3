use async_trait::async_trait;

use crate::Email;

/// A plain-text message to one recipient (serialisable, so a queue can keep it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutgoingMail {
    /// Recipient.
    pub to: Email,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Sending failed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The message could not be built (a bad address or header).
    #[error("mail could not be built")]
    Build(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The transport failed.
    #[error("mail transport failed")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Outgoing mail.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one message.
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
    /// Deletes every message to `to` this mailer still holds (an outbox file, a queued message),
    /// for account deletion; returns how many. A message a relay is delivering right now may
    /// still go out.
    async fn forget(&self, to: &Email) -> Result<usize, MailError>;
    /// The messages to `to` this mailer still holds (for the personal-data export). Delivered
    /// mail is not kept anywhere, so it is not listed.
    async fn held(&self, to: &Email) -> Result<Vec<HeldMail>, MailError>;
}

/// A message a mailer still holds for its recipient: its subject and whether it waits for
/// delivery. Never the body, which may carry a live link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldMail {
    /// The subject line, as in the message.
    pub subject: String,
    /// `true` while it waits to be delivered; `false` once given up on (a dead letter, kept
    /// for the operator).
    pub waiting: bool,
}
