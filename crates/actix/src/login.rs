//! The login operation a handler calls: the whole sequence behind a login form, so a handler
//! parses the form, calls [`LoginFlow::log_in`] once, and renders the result.
//!
//! In order: the limits judge the attempt ([`Limits::login`]: the client's budget, the device
//! cookie, the lock, the challenge, the reservation, as one store operation); only then is the
//! password checked ([`AuthService::login`], one answer and equal work for an unknown address and
//! a wrong password, and the second factor of an account with two-factor authentication, whose
//! failures are that same answer and count toward the same lock); on success the session is *replaced* ([`SessionManager::start`]: the id the
//! visitor presented, if any, is deleted server-side) and the layer is asked to send the new
//! session cookie and a device cookie. A right password for an unconfirmed address clears the
//! failure counter (it was no guess), starts no session and mails a new confirmation link.
//!
//! ```text
//! async fn login(flow: web::Data<LoginFlow>, v: Visitor, req: HttpRequest, form: web::Form<Credentials>)
//!     -> Result<HttpResponse, phaze_actix::Error>
//! {
//!     Ok(match flow.log_in(&v, &req, form.into_inner()).await? {
//!         LoginResult::LoggedIn(_) => see_other("/account"),
//!         LoginResult::Unconfirmed => forbidden("confirm your address: a new link is on its way"),
//!         LoginResult::Locked => forbidden("this account is suspended"),
//!         LoginResult::Refused { challenge, .. } => unauthorized("invalid email or password", challenge),
//!     })
//! }
//! ```

use actix_web::HttpRequest;
use phaze_auth::{Account, AuthError, AuthService};
use phaze_events::{Events, SecurityEvent};
use phaze_ratelimit::{Challenge, Limits, LoginAttempt, LoginError, LoginOutcome, Verdict};
use phaze_sessions::SessionManager;
use secrecy::SecretString;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::clock::Clock;
use crate::{Error, Visitor};

/// What a login form carries (other fields, such as `csrf_token` or a `next` URL, are the
/// service's and are ignored here).
#[derive(serde::Deserialize)]
pub struct Credentials {
    /// The address as typed.
    pub email: String,
    /// The password.
    pub password: SecretString,
    /// The answer to a proof-of-work challenge (`<token>.<counter>`), once one was shown.
    pub challenge: Option<String>,
    /// The second factor of an account with two-factor authentication: a code from its app or
    /// a recovery code. Ignored for other accounts.
    pub totp: Option<String>,
}

/// What a right password led to.
enum Checked {
    Account(Account),
    Unconfirmed,
    Locked,
}

/// How a login ended, for the handler to render.
#[derive(Debug)]
pub enum LoginResult {
    /// A new session started; its cookie and a device cookie go out with the response.
    LoggedIn(Box<Account>),
    /// The password was right but the address is not confirmed: a new confirmation link was
    /// mailed, no session started. Only a holder of the password sees this.
    Unconfirmed,
    /// Every factor was right but an admin suspended the account: no session. Only a holder of
    /// the credentials sees this.
    Locked,
    /// Refused: answer "invalid email or password", and show `challenge` (a proof of work the
    /// next attempt must carry) when there is one. `unchecked` is true when the password was
    /// not even checked because the challenge was missing or wrong (a page may say so; to an
    /// outsider both look alike).
    Refused {
        /// The challenge for the next attempt's form.
        challenge: Option<Challenge>,
        /// The credentials were not checked: the challenge was missing or wrong.
        unchecked: bool,
    },
}

/// The login operation over the three services; clone it into every worker.
#[derive(Clone)]
pub struct LoginFlow {
    auth: Arc<AuthService>,
    sessions: Arc<SessionManager>,
    limits: Arc<Limits>,
    clock: Clock,
    events: Events,
}

impl LoginFlow {
    /// A flow checking passwords with `auth`, starting sessions with `sessions` and judging
    /// attempts with `limits`, on the system clock.
    pub fn new(auth: Arc<AuthService>, sessions: Arc<SessionManager>, limits: Arc<Limits>) -> Self {
        Self {
            auth,
            sessions,
            limits,
            clock: crate::clock::system(),
            events: Events::default(),
        }
    }

    /// Reports logins through `events` (failures are the limits' to report).
    #[must_use]
    pub fn events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Reads the time from `now` instead (tests move a manual clock through lock windows).
    pub fn clock(mut self, now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(now);
        self
    }

    /// One login attempt by `visitor` (the device cookie is read from `req`).
    ///
    /// # Errors
    /// [`Error::TooManyRequests`] when the client's budget is spent or the counter is locked
    /// (429, `Retry-After`); [`Error::Unavailable`] when a store or the mail transport is down;
    /// [`Error::Internal`] for anything else.
    pub async fn log_in(
        &self,
        visitor: &Visitor,
        req: &HttpRequest,
        form: Credentials,
    ) -> Result<LoginResult, Error> {
        let Credentials {
            email,
            password,
            challenge,
            totp,
        } = form;
        let now = (self.clock)();
        let device = req.cookie(visitor.cookies.device);
        let attempt = LoginAttempt {
            client: visitor.client.ip,
            identifier: &email,
            device_cookie: device.as_ref().map(|c| c.value()),
            challenge_answer: challenge.as_deref(),
        };
        let outcome = self
            .limits
            .login(attempt, now, || async {
                match self
                    .auth
                    .login(&email, password, totp.as_deref(), now)
                    .await
                {
                    Ok(account) => Ok(Verdict::Right(Checked::Account(account))),
                    // The password was right: this was no guess.
                    Err(AuthError::EmailNotVerified) => Ok(Verdict::Right(Checked::Unconfirmed)),
                    Err(AuthError::AccountLocked) => Ok(Verdict::Right(Checked::Locked)),
                    Err(AuthError::InvalidCredentials) => Ok(Verdict::Wrong),
                    Err(e) => Err(e),
                }
            })
            .await
            .map_err(|e| match e {
                LoginError::Store(s) => Error::unavailable(s),
                LoginError::Check(e) => Error::from(e),
            })?;
        match outcome {
            LoginOutcome::Right {
                value: Checked::Account(account),
                device_cookie,
            } => {
                let presented = visitor.current.as_ref().map(|c| &c.session.key);
                let (id, _) = self
                    .sessions
                    .start(&account.id, presented, &visitor.meta(), now)
                    .await?;
                self.events.emit(SecurityEvent::LoginSucceeded {
                    user: account.id,
                    client: visitor.client.ip,
                });
                visitor.start_session(&id);
                visitor.set_device_cookie(&device_cookie);
                Ok(LoginResult::LoggedIn(Box::new(account)))
            }
            LoginOutcome::Right {
                value: Checked::Unconfirmed,
                ..
            } => {
                self.auth.resend_verification(&email, now).await?;
                Ok(LoginResult::Unconfirmed)
            }
            LoginOutcome::Right {
                value: Checked::Locked,
                ..
            } => Ok(LoginResult::Locked),
            LoginOutcome::Wrong { challenge } => Ok(LoginResult::Refused {
                challenge,
                unchecked: false,
            }),
            LoginOutcome::ChallengeRequired(challenge) => Ok(LoginResult::Refused {
                challenge: Some(challenge),
                unchecked: true,
            }),
            LoginOutcome::Limited(decision) => Err(Error::TooManyRequests(decision)),
        }
    }
}
