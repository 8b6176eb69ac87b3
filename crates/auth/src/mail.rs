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
}
