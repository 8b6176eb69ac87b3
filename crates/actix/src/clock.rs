//! The time the layers read: the system clock unless a builder was given another (tests move a
//! manual one through windows and lifetimes without sleeping).

use std::sync::Arc;
use time::OffsetDateTime;

/// A source of "now".
pub(crate) type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The system clock: the default of every builder here.
pub(crate) fn system() -> Clock {
    Arc::new(now)
}

#[allow(clippy::disallowed_methods)] // the one default reader of the system clock in this crate
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
