//! The actix-web application: listener, middleware order, routes, and the periodic purge.

use actix_web::dev::Server;
use actix_web::error::{JsonPayloadError, UrlencodedError};
use actix_web::middleware::from_fn;
use actix_web::web::{self, ServiceConfig};
use actix_web::{App, HttpServer};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::errors::AppError;
use crate::http::frame::frame;
use crate::routes::{
    account, admin, api, billing, devices, forward_auth, health, pages, password, two_factor,
};
use crate::settings::Settings;
use crate::state::AppState;
use crate::tls::ReloadingCert;
use phaze_actix::limits::Guards;
use phaze_actix::metrics::Metrics;
use phaze_ratelimit::Budget;

/// A built, bound, not yet running portal.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    state: web::Data<AppState>,
    /// The certificate, when serving HTTPS, and how often its files are checked.
    tls: Option<(Arc<ReloadingCert>, Duration)>,
    /// The plain listener that only redirects to HTTPS, if configured.
    redirect: Option<Server>,
}

impl Application {
    /// Binds the listener and wires everything, on the system clock.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`Application::build`] with a given clock (tests move it by hand).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((settings.http.host, settings.http.port))?;
        let addr = listener.local_addr()?;
        let public_url = settings.public_url(addr.port());
        let tls_settings = settings.http.tls.clone();
        let tls = if tls_settings.enabled() {
            Some(Arc::new(ReloadingCert::open(
                &tls_settings.cert_file,
                &tls_settings.key_file,
            )?))
        } else {
            None
        };
        let redirect = match tls_settings.redirect_port {
            0 => None,
            port => Some(redirect_server(
                TcpListener::bind((settings.http.host, port))?,
                public_url.clone(),
            )?),
        };
        let workers = match settings.http.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let state = web::Data::new(AppState::build(settings, public_url, clock).await?);
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            let limit = app_state.settings.http.max_body_bytes;
            let metrics = app_state.metrics.clone();
            App::new()
                .app_data(app_state.clone())
                .app_data(web::PayloadConfig::new(limit))
                .app_data(
                    web::FormConfig::default()
                        .limit(limit)
                        .error_handler(form_error),
                )
                .app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(json_error),
                )
                .configure(|cfg| routes(cfg, &app_state))
                .wrap(actix_web::middleware::Condition::new(
                    metrics.is_some(),
                    from_fn(move |req, next| {
                        // `Condition` builds the layer either way; without metrics it is skipped.
                        let m = metrics.clone().unwrap_or_default();
                        Metrics::middleware(m, req, next)
                    }),
                ))
                .wrap(from_fn(frame))
        })
        .workers(workers)
        .disable_signals();
        let server = match &tls {
            Some(cert) => server.listen_rustls_0_23(listener, cert.server_config()?)?,
            None => server.listen(listener)?,
        }
        .run();
        let reload = Duration::from_secs(tls_settings.reload_secs.max(1).into());
        Ok(Self {
            server,
            addr,
            state,
            tls: tls.map(|cert| (cert, reload)),
            redirect,
        })
    }

    /// Where the portal listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (tests inspect the stores through it).
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until the server stops, purging expired sessions and tokens every five minutes.
    pub async fn run(self) -> std::io::Result<()> {
        // A process started with a new first session key seals what older keys sealed, beside
        // serving (`phaze-portal keys rotate` does the same in the foreground). With one key
        // there is nothing to do, and no reason to read every account at each start.
        let resealing = self.state.clone();
        let reseal = actix_web::rt::spawn(async move {
            if !resealing.auth.accounts().sealer().rotating() {
                return;
            }
            match resealing.reseal_stored().await {
                Ok(done) if done.unopened() > 0 => tracing::error!(
                    records = done.unopened(),
                    "stored data no configured session key opens; keep the keys it needs"
                ),
                Ok(done) => {
                    let devices = done.devices.map_or(0, |d| d.resealed);
                    if done.accounts.resealed + devices > 0 {
                        tracing::info!(
                            accounts = done.accounts.resealed,
                            devices,
                            "sealed again under the newest session key"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "re-sealing under the newest key failed"),
            }
        });
        let state = self.state.clone();
        let purge = actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(Duration::from_secs(300));
            loop {
                tick.tick().await;
                let now = state.clock.now();
                let sessions = state.sessions.purge_expired(now).await;
                let tokens = state.tokens.purge_expired(now).await;
                let limits = state.limits.purge_idle(now).await;
                let events = state
                    .processed_events
                    .purge(now - state.settings.payments.retention())
                    .await;
                let audit_days = state.settings.retention.audit_days;
                if audit_days > 0 {
                    let cutoff = now - time::Duration::days(audit_days.into());
                    match state.admin.audit_log().purge_before(cutoff, now).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(audit_entries = n, "old audit entries purged"),
                        Err(e) => tracing::warn!(error = %e, "audit purge failed; retrying later"),
                    }
                }
                match state.privacy.resume_pending(now).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deletions = n, "open account deletions finished"),
                    Err(e) => tracing::warn!(
                        error = %crate::errors::chain(&e),
                        "an open account deletion failed again; retrying later"
                    ),
                }
                match (sessions, tokens, limits, events) {
                    (Ok(s), Ok(t), Ok(l), Ok(e)) => {
                        tracing::debug!(
                            sessions = s,
                            tokens = t,
                            rate_limits = l,
                            webhook_events = e,
                            "purged"
                        )
                    }
                    (s, t, l, e) => tracing::warn!(
                        sessions = ?s.err(),
                        tokens = ?t.err(),
                        rate_limits = ?l.err(),
                        webhook_events = ?e.err(),
                        "purge failed"
                    ),
                }
            }
        });
        let reload = self.tls.map(|(cert, every)| {
            actix_web::rt::spawn(async move {
                let mut tick = actix_web::rt::time::interval(every);
                loop {
                    tick.tick().await;
                    let cert = cert.clone();
                    // Reading two small files: off the async workers all the same.
                    let _ =
                        actix_web::rt::task::spawn_blocking(move || cert.reload_if_changed()).await;
                }
            })
        });
        let redirect = self.redirect.map(actix_web::rt::spawn);
        let handle = self.server.handle();
        let stop = actix_web::rt::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("shutting down");
                handle.stop(true).await;
            }
        });
        let result = self.server.await;
        purge.abort();
        reseal.abort();
        stop.abort();
        if let Some(r) = reload {
            r.abort();
        }
        if let Some(r) = redirect {
            r.abort();
        }
        result
    }
}

/// Every route. The one route that authenticates by signature, Stripe's webhook, is registered
/// outside the visitor scope: that is its whole exemption from CSRF (no path list), and its
/// handler can act only on a body whose signature verified.
pub fn routes(cfg: &mut ServiceConfig, state: &AppState) {
    // Budgets spent before the handler runs (after the visitor layer's CSRF check): 429 with
    // `Retry-After` and `RateLimit-*`, 503 when the store cannot say.
    let clock = state.clock.clone();
    let guards = Guards::new(state.limits.clone()).clock(move || clock.now());
    let per_client = |b| from_fn(guards.per_client(b));
    let per_account = |b| from_fn(guards.per_account(b));
    cfg.service(web::resource("/healthz").route(get_or_head().to(health::healthz)))
        .service(web::resource("/readyz").route(get_or_head().to(health::readyz)))
        .service(web::resource("/static/app.css").route(get_or_head().to(health::css)))
        .service(web::resource("/static/app.js").route(get_or_head().to(health::js)))
        .service(
            web::resource("/webhooks/stripe")
                .app_data(web::PayloadConfig::new(
                    phaze_payments::event::MAX_BODY_BYTES,
                ))
                .post(billing::stripe),
        )
        // Forward authentication answers any method (Envoy checks with the client's): it only
        // reads the session, so its layer judges every method as a read (no CSRF, no budget).
        .service(
            web::scope("/auth/verify")
                .wrap(from_fn(state.visitors.read_only_middleware()))
                .service(web::resource(["", "/{tail:.*}"]).to(forward_auth::verify)),
        )
        .service(
            web::scope("")
                .wrap(from_fn(state.visitors.middleware()))
                .service(web::resource("/").route(get_or_head().to(pages::index)))
                .service(web::resource("/metrics").route(get_or_head().to(health::metrics)))
                .service(
                    web::resource("/register")
                        .route(get_or_head().to(pages::register_form))
                        .route(
                            web::post()
                                .to(pages::register)
                                .wrap(per_client(Budget::Register)),
                        ),
                )
                .service(
                    web::resource("/login")
                        .route(get_or_head().to(pages::login_form))
                        .post(pages::login),
                )
                .service(web::resource("/logout").post(pages::logout))
                .service(
                    web::resource("/password/forgot")
                        .route(get_or_head().to(password::forgot_form))
                        .route(
                            web::post()
                                .to(password::forgot)
                                .wrap(per_client(Budget::ResetPerClient)),
                        ),
                )
                .service(web::resource("/account").route(get_or_head().to(account::show)))
                .service(web::resource("/account/export").route(get_or_head().to(account::export)))
                .service(
                    web::resource("/account/delete").route(
                        web::post()
                            .to(account::delete)
                            .wrap(per_account(Budget::PasswordChange)),
                    ),
                )
                .service(web::resource("/account/profile").post(account::profile))
                .service(
                    web::resource("/account/password").route(
                        web::post()
                            .to(account::password)
                            .wrap(per_account(Budget::PasswordChange)),
                    ),
                )
                .service(
                    web::resource("/account/sessions").route(get_or_head().to(account::sessions)),
                )
                .service(
                    web::resource("/account/confirm").route(get_or_head().to(pages::reauth_form)),
                )
                .service(web::resource("/account/2fa").route(get_or_head().to(two_factor::show)))
                // Guessing a password or a code through a stolen session costs the same budget
                // as guessing it through the password form.
                .service(
                    web::resource("/account/2fa/enable").route(
                        web::post()
                            .to(two_factor::enable)
                            .wrap(per_account(Budget::PasswordChange)),
                    ),
                )
                .service(
                    web::resource("/account/2fa/disable").route(
                        web::post()
                            .to(two_factor::disable)
                            .wrap(per_account(Budget::PasswordChange)),
                    ),
                )
                .service(
                    web::resource("/account/2fa/recovery-codes").post(two_factor::recovery_codes),
                )
                .service(
                    web::resource("/account/sessions/revoke-others").post(account::revoke_others),
                )
                .service(web::resource("/billing").route(get_or_head().to(billing::show)))
                .service(web::resource("/billing/checkout").post(billing::checkout))
                .service(web::resource("/billing/portal").post(billing::manage))
                .service(web::resource("/api/v1/me").route(get_or_head().to(api::me)))
                .service(
                    web::resource("/api/v1/profile").route(
                        web::post()
                            .to(api::profile)
                            .wrap(per_account(Budget::ProfileApi)),
                    ),
                )
                // Routes with path parameters last: each one the router passes is a regex match.
                // Guessing a reset token costs a request of the verification budget each.
                .service(
                    web::resource("/password/reset/{token}")
                        .route(
                            web::get()
                                .to(password::reset_form)
                                .wrap(per_client(Budget::Verify)),
                        )
                        .route(
                            web::post()
                                .to(password::reset)
                                .wrap(per_client(Budget::Verify)),
                        ),
                )
                // GET only: the link is single use, and a HEAD must not spend it.
                .service(
                    web::resource("/verify/{token}").route(
                        web::get()
                            .to(pages::verify)
                            .wrap(per_client(Budget::Verify)),
                    ),
                )
                .service(web::resource("/account/sessions/{id}/revoke").post(account::revoke))
                .service(
                    web::resource("/account/devices")
                        .route(get_or_head().to(devices::list))
                        .post(devices::add),
                )
                .service(
                    web::resource("/account/devices/{id}/config")
                        .route(get_or_head().to(devices::config)),
                )
                .service(
                    web::resource("/account/devices/{id}/qr").route(get_or_head().to(devices::qr)),
                )
                .service(web::resource("/account/devices/{id}/delete").post(devices::delete))
                .service(web::resource("/admin/users").route(get_or_head().to(admin::users)))
                .service(web::resource("/admin/users/{id}/{action}").post(admin::act))
                .service(web::resource("/admin/audit").route(get_or_head().to(admin::audit)))
                .default_service(web::to(not_found)),
        );
}

/// The plain-HTTP listener of `http.tls.redirect_port`: every request, any method, gets `308` to
/// the same path and query under `public_url` (always the portal's own origin, whatever the
/// request's `Host` says).
fn redirect_server(listener: TcpListener, public_url: String) -> std::io::Result<Server> {
    Ok(HttpServer::new(move || {
        let base = public_url.clone();
        App::new().default_service(web::to(move |req: actix_web::HttpRequest| {
            let target = format!(
                "{base}{}",
                req.uri().path_and_query().map_or("/", |p| p.as_str())
            );
            async move {
                actix_web::HttpResponse::PermanentRedirect()
                    .insert_header((actix_web::http::header::LOCATION, target))
                    .finish()
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}

/// Pages and probes answer `HEAD` as `GET` does (RFC 9110), and actix sends no body for it.
fn get_or_head() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

async fn not_found() -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}

fn form_error(err: UrlencodedError, _: &actix_web::HttpRequest) -> actix_web::Error {
    match err {
        UrlencodedError::Overflow { .. } => actix_web::error::ErrorPayloadTooLarge(err),
        UrlencodedError::ContentType => actix_web::error::ErrorUnsupportedMediaType(err),
        _ => actix_web::error::ErrorBadRequest(err),
    }
}

fn json_error(err: JsonPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            actix_web::error::ErrorPayloadTooLarge(err)
        }
        JsonPayloadError::ContentType => actix_web::error::ErrorUnsupportedMediaType(err),
        JsonPayloadError::Deserialize(_) => actix_web::error::ErrorUnprocessableEntity(err),
        _ => actix_web::error::ErrorBadRequest(err),
    }
}
