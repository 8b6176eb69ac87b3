//! Mail that leaves the building.
//!
//! [`phaze_auth::Mailer`] is what the flows call; this crate makes "sent" mean "will arrive":
//!
//! - [`QueuedMailer`] is the `Mailer` of a deployment with an SMTP relay: `send` only writes the
//!   message to a durable [`MailQueue`] (a file per message on the fs store), so no request
//!   waits on, or fails with, the relay.
//! - [`Courier`] is the sender task: it claims due messages, hands them to a [`Relay`], and on a
//!   temporary failure puts them back with exponential backoff ([`Backoff`]); a permanent refusal,
//!   or the last of `max_attempts` failures, makes a dead letter (kept, and logged as the
//!   security event `mail_dead_letter`). Delivery is at least once: a process that dies while
//!   sending leaves the message to be claimed again, and every attempt carries the same
//!   `Message-ID`, so a receiver can tell a repeat.
//! - The relay over SMTP is `phaze_smtp::SmtpRelay` (an adapter crate, as `phaze-stripe` is for
//!   payments): any [`Relay`] will do.
//! - [`compose`] builds the RFC 5322 message with lettre's typed builder: no CR or LF from any
//!   input reaches a header.

mod compose;
mod courier;
mod queue;

pub use compose::{compose, parse_from};
pub use courier::{Backoff, Courier, Relay, RelayError};
pub use queue::{MailQueue, QueueError, QueuedMail, QueuedMailer};
