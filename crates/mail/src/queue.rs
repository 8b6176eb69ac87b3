//! The durable queue port, and the `Mailer` that only queues.

use async_trait::async_trait;
use phaze_auth::{Email, HeldMail, MailError, Mailer, OutgoingMail};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// A message in the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMail {
    /// 32 lower-case hex digits: the file name and the `Message-ID`'s local part.
    pub id: String,
    /// The message.
    pub mail: OutgoingMail,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not to be tried before this instant.
    #[serde(with = "time::serde::timestamp")]
    pub due: OffsetDateTime,
    /// Why the last attempt failed (the relay's words, for the operator), if one did.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl QueuedMail {
    /// A new message, due at once, with a fresh random id.
    pub fn new(mail: OutgoingMail, now: OffsetDateTime) -> Self {
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        Self {
            id: hex::encode(id),
            mail,
            attempts: 0,
            due: now,
            last_error: None,
        }
    }
}

/// The queue could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("mail queue unavailable")]
pub struct QueueError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Messages waiting to leave, kept durably: a message pushed is there after a restart, until it
/// is delivered or becomes a dead letter.
///
/// A message is worked on by one claimer at a time, across every process sharing the queue:
/// [`MailQueue::claim`] hands it out and one of `delivered`, `retry` or `dead` settles it; a
/// claimer that dies first (its process ends) leaves it to be claimed again.
#[async_trait]
pub trait MailQueue: Send + Sync {
    /// Stores `mail` before returning.
    async fn push(&self, mail: &QueuedMail) -> Result<(), QueueError>;
    /// A message whose `due` is not after `now` and that nobody holds, now held by the caller;
    /// `None` when there is none.
    async fn claim(&self, now: OffsetDateTime) -> Result<Option<QueuedMail>, QueueError>;
    /// The held message `id` was delivered: it leaves the queue.
    async fn delivered(&self, id: &str) -> Result<(), QueueError>;
    /// The held message goes back as `mail` (more attempts, a later `due`), released.
    async fn retry(&self, mail: &QueuedMail) -> Result<(), QueueError>;
    /// The held message is a dead letter: kept aside as `mail` for the operator, never tried
    /// again.
    async fn dead(&self, mail: &QueuedMail) -> Result<(), QueueError>;
    /// The dead letters, for operators and tests.
    async fn dead_letters(&self) -> Result<Vec<QueuedMail>, QueueError>;
    /// How many messages wait for delivery (held ones included, dead letters not): the
    /// `phaze_mail_queue_depth` metric.
    async fn depth(&self) -> Result<usize, QueueError>;
    /// Deletes the waiting messages and dead letters to `to` that nobody holds (account
    /// deletion); returns how many.
    async fn forget(&self, to: &str) -> Result<usize, QueueError>;
    /// The waiting messages to `to` (held ones included, dead letters not).
    async fn waiting_for(&self, to: &str) -> Result<Vec<QueuedMail>, QueueError>;
}

/// The [`Mailer`] of a deployment with a relay: `send` queues, and the courier delivers.
pub struct QueuedMailer {
    queue: Arc<dyn MailQueue>,
    clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    wake: Arc<Notify>,
}

impl QueuedMailer {
    /// Queues into `queue`, stamping messages with `clock`, and wakes the courier through
    /// `wake` (the [`crate::Courier`]'s, so mail leaves at once rather than at its next poll).
    pub fn new(
        queue: Arc<dyn MailQueue>,
        clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
        wake: Arc<Notify>,
    ) -> Self {
        Self { queue, clock, wake }
    }
}

#[async_trait]
impl Mailer for QueuedMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let queued = QueuedMail::new(mail.clone(), (self.clock)());
        self.queue
            .push(&queued)
            .await
            .map_err(|e| MailError::Transport(Box::new(e)))?;
        self.wake.notify_one();
        Ok(())
    }

    async fn forget(&self, to: &Email) -> Result<usize, MailError> {
        self.queue
            .forget(to.as_str())
            .await
            .map_err(|e| MailError::Transport(Box::new(e)))
    }

    async fn held(&self, to: &Email) -> Result<Vec<HeldMail>, MailError> {
        let failed = |e: QueueError| MailError::Transport(Box::new(e));
        let waiting = self.queue.waiting_for(to.as_str()).await.map_err(failed)?;
        let dead = self.queue.dead_letters().await.map_err(failed)?;
        let dead = dead.into_iter().filter(|q| q.mail.to == *to);
        Ok(waiting
            .into_iter()
            .map(|q| (q, true))
            .chain(dead.map(|q| (q, false)))
            .map(|(q, waiting)| HeldMail {
                subject: q.mail.subject,
                waiting,
            })
            .collect())
    }
}
