//! Rate-limit guards for routes: a budget spent before the handler runs, answered with `429`,
//! `Retry-After` and `RateLimit-*` when it is spent, and with `503` when the store cannot say
//! (never "allow because the limiter is down").
//!
//! ```text
//! let guards = Guards::new(limits);
//! web::resource("/register").wrap(from_fn(guards.per_client(Budget::Register)))
//! ```

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use phaze_ratelimit::{Budget, Limits};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::client::client_of;
use crate::{Error, Visitor};

type Answer = Pin<Box<dyn Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>>>;

use crate::clock::Clock;

/// Guards over one [`Limits`]: clone it into every worker.
#[derive(Clone)]
pub struct Guards {
    limits: Arc<Limits>,
    clock: Clock,
}

impl Guards {
    /// Guards spending from `limits`, on the system clock.
    pub fn new(limits: Arc<Limits>) -> Self {
        Self {
            limits,
            clock: crate::clock::system(),
        }
    }

    /// Reads the time from `now` instead (tests move a manual clock through the windows).
    pub fn clock(mut self, now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }

    /// Spends one event of `budget` for the client's network (as [`crate::client::resolve`]
    /// decided it) before the route runs.
    pub fn per_client<B: MessageBody + 'static>(
        &self,
        budget: Budget,
    ) -> impl Fn(ServiceRequest, Next<B>) -> Answer + 'static {
        let guards = self.clone();
        move |req, next| {
            let guards = guards.clone();
            Box::pin(async move {
                let client = client_of(&req);
                match guards
                    .limits
                    .spend(budget, client.ip, (guards.clock)())
                    .await
                {
                    Ok(_) => Ok(next.call(req).await?.map_into_boxed_body()),
                    Err(e) => Ok(req.error_response(Error::from(e))),
                }
            })
        }
    }

    /// Spends one event of `budget` for the logged-in account (from the
    /// [`crate::VisitorLayer`], which must wrap the route) before the route runs; an anonymous
    /// request spends nothing and goes on, for the handler to send to the login page.
    pub fn per_account<B: MessageBody + 'static>(
        &self,
        budget: Budget,
    ) -> impl Fn(ServiceRequest, Next<B>) -> Answer + 'static {
        let guards = self.clone();
        move |req, next| {
            let guards = guards.clone();
            Box::pin(async move {
                let user = req
                    .extensions()
                    .get::<Visitor>()
                    .and_then(|v| v.current.as_ref().map(|c| c.user().to_string()));
                if let Some(user) = user {
                    let now = (guards.clock)();
                    if let Err(e) = guards.limits.spend_for_account(budget, &user, now).await {
                        return Ok(req.error_response(Error::from(e)));
                    }
                }
                Ok(next.call(req).await?.map_into_boxed_body())
            })
        }
    }
}
