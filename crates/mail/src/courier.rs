//! The sender task: claim, deliver, retry with backoff, dead letters.

use async_trait::async_trait;
use phaze_auth::OutgoingMail;
use phaze_events::{Events, SecurityEvent};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use tokio::sync::Notify;

use crate::{MailQueue, QueueError, QueuedMail};

/// Why a relay did not take a message.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Worth another try later: the relay is down, slow, or answered 4xx.
    #[error("temporary: {0}")]
    Temporary(String),
    /// Never worth another try: the relay answered 5xx (no such mailbox, refused), or the
    /// message cannot be built.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Where messages go (SMTP in production; a fake in tests).
#[async_trait]
pub trait Relay: Send + Sync {
    /// Hands `mail` over, with `id` as its `Message-ID`'s local part.
    async fn deliver(&self, id: &str, mail: &OutgoingMail) -> Result<(), RelayError>;
}

/// When a failed message is tried again, and when to give up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The wait after the first failure; each further failure doubles it.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Failures after which a message is a dead letter.
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 30 s, doubling to at most an hour, dead after 10 failures (about 5 hours in all).
    fn default() -> Self {
        Self {
            first: Duration::seconds(30),
            max: Duration::hours(1),
            max_attempts: 10,
        }
    }
}

impl Backoff {
    /// The wait after failure number `attempts` (1 for the first).
    pub fn delay(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(30);
        let factor = 1i32 << doublings;
        self.first
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// Delivers queued mail. One per process is enough; several (in several processes) share the
/// queue safely, as each message is claimed by one of them at a time.
pub struct Courier {
    queue: Arc<dyn MailQueue>,
    relay: Arc<dyn Relay>,
    backoff: Backoff,
    clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    wake: Arc<Notify>,
    events: Events,
}

impl Courier {
    /// A courier from `queue` to `relay`.
    pub fn new(
        queue: Arc<dyn MailQueue>,
        relay: Arc<dyn Relay>,
        backoff: Backoff,
        clock: Arc<dyn Fn() -> OffsetDateTime + Send + Sync>,
    ) -> Self {
        Self {
            queue,
            relay,
            backoff,
            clock,
            wake: Arc::new(Notify::new()),
            events: Events::default(),
        }
    }

    /// Reports dead letters through `events`.
    #[must_use]
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// What a [`crate::QueuedMailer`] notifies when it queues, to wake this courier.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Works through every message due now, once each; returns how many it settled.
    pub async fn run_once(&self) -> Result<usize, QueueError> {
        let mut settled = 0;
        while let Some(mut queued) = self.queue.claim((self.clock)()).await? {
            match self.relay.deliver(&queued.id, &queued.mail).await {
                Ok(()) => {
                    self.queue.delivered(&queued.id).await?;
                    tracing::info!(target: "mail", event = "mail_delivered", id = %queued.id, attempts = queued.attempts + 1);
                }
                Err(e) => {
                    queued.attempts += 1;
                    queued.last_error = Some(e.to_string());
                    let permanent = matches!(e, RelayError::Permanent(_));
                    if permanent || queued.attempts >= self.backoff.max_attempts {
                        self.queue.dead(&queued).await?;
                        tracing::error!(target: "mail", id = %queued.id, error = %e, "message given up");
                        self.events.emit(SecurityEvent::MailDeadLetter {
                            id: queued.id.clone(),
                            attempts: u64::from(queued.attempts),
                        });
                    } else {
                        queued.due = (self.clock)() + self.backoff.delay(queued.attempts);
                        self.queue.retry(&queued).await?;
                        tracing::warn!(target: "mail", event = "mail_retry", id = %queued.id, attempts = queued.attempts, due = %queued.due, error = %e);
                    }
                }
            }
            settled += 1;
        }
        Ok(settled)
    }

    /// Runs forever: delivers what is due, then waits to be woken by new mail or for `poll`
    /// (which is also how retries come due). A queue error is logged and retried at the next
    /// round, never the end of the task.
    pub async fn run(self, poll: std::time::Duration) {
        loop {
            if let Err(e) = self.run_once().await {
                tracing::error!(target: "mail", error = %e, source = ?std::error::Error::source(&e), "mail queue unavailable");
            }
            let _ = tokio::time::timeout(poll, self.wake.notified()).await;
        }
    }

    /// The messages held aside: delegated to the queue.
    pub async fn dead_letters(&self) -> Result<Vec<QueuedMail>, QueueError> {
        self.queue.dead_letters().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::seconds(30));
        assert_eq!(b.delay(2), Duration::seconds(60));
        assert_eq!(b.delay(5), Duration::seconds(480));
        assert_eq!(b.delay(8), Duration::hours(1));
        assert_eq!(b.delay(u32::MAX), Duration::hours(1));
    }
}
