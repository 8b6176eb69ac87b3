//! Wiring: the adapters chosen by configuration behind the domain services, built once at start-up
//! and shared by every worker.

use anyhow::Context as _;
use hmac::{Hmac, Mac};
use phaze_actix::metrics::{Metrics, MetricsAccess, Timed};
use phaze_actix::{LoginFlow, RateLimitStepLedger, VisitorLayer};
use phaze_admin::AdminService;
use phaze_audit::{AuditLog, AuditStore};
use phaze_auth::{
    AccountStore, Argon2id, AuthConfig, AuthKeys, AuthService, EmailIndexKey, HashParams, Mailer,
    PasswordPolicy, TokenHasher, TokenStore,
};
use phaze_devices::{AddressPool, DeviceService, DeviceStore, Provisioner};
use phaze_events::{EventSink, Events, TracingSink};
use phaze_mail::MailQueue;
use phaze_payments::{Billing, PaymentGateway, ProcessedEvents, Subscriptions, Webhooks};
use phaze_privacy::PrivacyService;
use phaze_ratelimit::{KeyHasher, LimitKeys, Limits, RateLimitStore, TrustedProxies};
use phaze_sessions::{Csrf, Sealer, SealingKey, SessionManager, SessionStore};
use phaze_store_fs::{DataDir, FsOutbox, Sharing};
use phaze_store_memory::{
    MemoryAccounts, MemoryProcessedEvents, MemoryRateLimits, MemorySessions, MemorySubscriptions,
    MemoryTokens,
};
use phaze_store_postgres::{PgConfig, Postgres, WatchEvent};
use phaze_store_redis::{Redis, RedisConfig};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::path::PathBuf;
use std::sync::Arc;
use time::Duration;

use crate::clock::Clock;
use crate::deferred::Deferred;
use crate::hashing::OffloadedHasher;
use crate::secrets;
use crate::settings::{Settings, StoreKind};

/// The adapters behind the ports.
struct Stores {
    sessions: Arc<dyn SessionStore>,
    accounts: Arc<dyn AccountStore>,
    tokens: Arc<dyn TokenStore>,
    rate_limits: Arc<dyn RateLimitStore>,
    processed_events: Arc<dyn ProcessedEvents>,
    subscriptions: Arc<dyn Subscriptions>,
    devices: Arc<dyn DeviceStore>,
    address_pool: Arc<dyn AddressPool>,
    audit: Arc<dyn AuditStore>,
    probes: Vec<Probe>,
    background: Vec<Background>,
}

/// The mailer, and the queue behind it when there is one.
type Outgoing = (Arc<dyn Mailer>, Option<Arc<dyn MailQueue>>);

/// The mailer: with no relay configured, the outbox directory (one `.eml` per message, for a
/// local relay or a person to pick up); with `mail.smtp.host`, a durable queue in that directory
/// and a courier task delivering it over SMTP with retries.
fn mailer(
    settings: &Settings,
    clock: &Arc<dyn Clock>,
    events: &Events,
    background: &mut Vec<Background>,
) -> anyhow::Result<Outgoing> {
    let m = &settings.mail;
    if m.smtp.host.trim().is_empty() {
        return Ok((
            Arc::new(FsOutbox::open(settings.outbox_dir(), &m.from)?),
            None,
        ));
    }
    let from = phaze_mail::parse_from(&m.from).context("mail.from")?;
    let relay = phaze_smtp::SmtpRelay::new(&m.smtp, from)?;
    let queue = Arc::new(phaze_store_fs::FsMailQueue::open(settings.outbox_dir())?);
    let now = {
        let clock = clock.clone();
        Arc::new(move || clock.now()) as Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>
    };
    let courier =
        phaze_mail::Courier::new(queue.clone(), Arc::new(relay), m.backoff(), now.clone())
            .with_events(events.clone());
    let mailer = phaze_mail::QueuedMailer::new(queue.clone(), now, courier.wake_handle());
    let poll = std::time::Duration::from_secs(m.poll_secs.max(1).into());
    background.push(Background(tokio::spawn(courier.run(poll))));
    Ok((Arc::new(mailer), Some(queue)))
}

/// The device use cases, once a VPN server is configured (`devices.server_public_key`).
fn device_service(
    settings: &Settings,
    store: Arc<dyn DeviceStore>,
    pool: Arc<dyn AddressPool>,
    sealer: &Sealer,
    events: &Events,
) -> anyhow::Result<Option<Arc<DeviceService>>> {
    let d = &settings.devices;
    let Some(server) = d.server() else {
        return Ok(None);
    };
    let provisioner: Arc<dyn Provisioner> = match d.provisioner.as_str() {
        "memory" => Arc::new(phaze_store_memory::MemoryProvisioner::default()),
        "wg" => {
            let runner = phaze_sanitize::CommandRunner::new(phaze_sanitize::CommandPolicy {
                allowed: vec![d.wg_path.clone()],
                env: Vec::new(),
                timeout: std::time::Duration::from_secs(10),
                max_output: 64 * 1024,
            })?
            .with_events(events.clone());
            let interface = phaze_wireguard::Interface::parse(&d.wg_interface)
                .context("devices.wg_interface")?;
            Arc::new(phaze_wireguard::WgProvisioner::new(
                Arc::new(runner),
                d.wg_path.clone(),
                interface,
            ))
        }
        _ => {
            let dir = if d.peers_dir.as_os_str().is_empty() {
                settings.store.data_dir.join("wireguard")
            } else {
                d.peers_dir.clone()
            };
            Arc::new(
                phaze_wireguard::PeerFileProvisioner::open(&dir)
                    .with_context(|| format!("devices.peers_dir: {}", dir.display()))?,
            )
        }
    };
    Ok(Some(Arc::new(
        DeviceService::new(
            store,
            pool,
            provisioner,
            sealer.clone(),
            phaze_devices::PoolSettings {
                v4: d.pool_v4,
                v6: d.pool_v6,
            },
            server,
            d.limit_per_account,
        )
        .with_events(events.clone()),
    )))
}

/// A task the stores need running (the account cache's watcher); aborted when the state goes.
pub struct Background(tokio::task::JoinHandle<()>);

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One dependency `/readyz` checks.
pub enum Probe {
    /// A directory of the fs store must exist.
    Dir(PathBuf),
    /// PostgreSQL must answer.
    Postgres(Postgres),
    /// Redis must answer.
    Redis(Redis),
}

impl Probe {
    /// Whether the dependency is usable now; the error says what is not (for the log only).
    pub async fn check(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        match self {
            Probe::Dir(dir) => {
                if std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
                    Ok(())
                } else {
                    Err(format!("{} is not a directory", dir.display()).into())
                }
            }
            Probe::Postgres(pg) => Ok(pg.ping().await?),
            Probe::Redis(redis) => Ok(redis.ping().await?),
        }
    }
}

/// Registrations waiting to be finished at once; more are refused with 503 (for any address).
/// Each costs an argon2 hash before it is queued, so this is seconds of sign-ups at the peak.
const DEFERRED_QUEUE: usize = 4096;

/// Everything a request handler can reach.
pub struct AppState {
    /// The configuration in force.
    pub settings: Settings,
    /// VPN devices; `None` until `devices.server_public_key` is set.
    pub devices: Option<Arc<DeviceService>>,
    /// Public base URL, no trailing slash.
    pub public_url: String,
    /// The origin of `public_url` (`scheme://host[:port]`, lower case): the only `Origin` a
    /// state-changing request may carry.
    pub public_origin: String,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Account use cases.
    pub auth: Arc<AuthService>,
    /// Sessions.
    pub sessions: Arc<SessionManager>,
    /// The visitor layer (session, account, CSRF, POST budget, cookies) over the two above.
    pub visitors: VisitorLayer,
    /// The login operation (limits, password, session replaced, device cookie).
    pub login: LoginFlow,
    /// Trusted-proxy rules.
    pub proxies: TrustedProxies,
    /// What `/readyz` checks.
    pub probes: Vec<Probe>,
    /// Token store, for the periodic purge.
    pub tokens: Arc<dyn TokenStore>,
    /// Request budgets and the login sequence (lockout, challenges, device cookies).
    pub limits: Arc<Limits>,
    /// Work that runs after the answer has left (finishing registrations).
    pub deferred: Deferred,
    /// Stripe webhook deliveries (verify, claim, apply).
    pub webhooks: Webhooks,
    /// The billing page's operations.
    pub billing: Billing,
    /// Processed webhook event ids, for the periodic purge.
    pub processed_events: Arc<dyn ProcessedEvents>,
    /// Admin operations (and the audit log behind them).
    pub admin: Arc<AdminService>,
    /// The data subject's rights: export.
    pub privacy: Arc<PrivacyService>,
    /// Where security events go: the log, and the metrics when they are on.
    pub events: Events,
    /// The process's metrics; `None` with `metrics.enabled = false`.
    pub metrics: Option<Arc<Metrics>>,
    /// Who may read `/metrics`.
    pub metrics_access: MetricsAccess,
    /// The SMTP queue, when mail goes through one (its depth is a metric).
    pub mail_queue: Option<Arc<dyn MailQueue>>,
    /// Tasks the stores need, for as long as the state lives.
    _background: Vec<Background>,
}

impl AppState {
    /// Builds the state; `public_url` is final (the listener is bound first).
    pub async fn build(
        settings: Settings,
        public_url: String,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let metrics = settings.metrics.enabled.then(|| Arc::new(Metrics::new()));
        let events = match &metrics {
            Some(m) => Events::new([
                Arc::new(TracingSink) as Arc<dyn EventSink>,
                m.clone() as Arc<dyn EventSink>,
            ]),
            None => Events::tracing(),
        };
        // Stores first: a process refused the data directory must not create keys in it.
        let Stores {
            sessions,
            accounts,
            tokens,
            rate_limits,
            processed_events,
            subscriptions,
            devices,
            address_pool,
            audit,
            probes,
            mut background,
        } = stores(&settings, &events).await?;
        // With metrics on, the hot ports are timed by adapter.
        let (sessions, accounts, rate_limits) = match &metrics {
            Some(m) => {
                let main = match settings.store.kind {
                    StoreKind::Memory => "memory",
                    StoreKind::Fs => "fs",
                    StoreKind::Postgres => "postgres",
                };
                let hot = if redis_config(&settings).is_some() {
                    "redis"
                } else {
                    main
                };
                (
                    Arc::new(Timed::new(sessions, hot, m.clone())) as Arc<dyn SessionStore>,
                    Arc::new(Timed::new(accounts, main, m.clone())) as Arc<dyn AccountStore>,
                    Arc::new(Timed::new(rate_limits, hot, m.clone())) as Arc<dyn RateLimitStore>,
                )
            }
            None => (sessions, accounts, rate_limits),
        };
        let keys = secrets::load(&settings)?;
        let (mailer, mail_queue) = mailer(&settings, &clock, &events, &mut background)?;

        // Rate-limit keys get their own secret, derived from the token pepper, so one generated
        // file serves both without either revealing the other.
        // Device cookies are keyed from the CSRF secret, challenges from the pepper.
        let secret = |master, purpose| SecretBox::new(Box::new(derive(master, purpose)));
        // The audit chain's MAC key: derived like the others, never stored in the audit store.
        let audit_key = derive(&keys.token_pepper, b"phaze/audit");
        let steps = Arc::new(RateLimitStepLedger::new(
            rate_limits.clone(),
            KeyHasher::new(secret(&keys.token_pepper, b"phaze/totp-steps")),
        ));
        let limits = Arc::new(
            Limits::new(
                rate_limits,
                LimitKeys {
                    keys: secret(&keys.token_pepper, b"phaze/ratelimit-keys"),
                    devices: secret(&keys.csrf, b"phaze/device-cookies"),
                    challenges: secret(&keys.token_pepper, b"phaze/challenges"),
                },
                settings.ratelimit.clone(),
            )
            .with_events(events.clone()),
        );

        let a = &settings.auth;
        let argon = Argon2id::new(HashParams {
            m_cost: a.argon2_m_kib,
            t_cost: a.argon2_t,
            p_cost: a.argon2_p,
        })?;
        let concurrency = match a.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        // One key list seals session data, TOTP secrets, addresses and display names: one
        // rotation covers them all.
        let sealer = Sealer::new(
            keys.session
                .iter()
                .map(|k| SealingKey::new(k.expose_secret()))
                .collect(),
        )?;
        let auth = Arc::new(
            AuthService::new(
                accounts,
                tokens.clone(),
                steps,
                mailer,
                Arc::new(OffloadedHasher::new(
                    argon,
                    concurrency,
                    metrics.as_ref().map(|m| m.argon2()),
                )),
                AuthKeys {
                    email_index: EmailIndexKey::new(secret(
                        &keys.token_pepper,
                        b"phaze/email-index",
                    )),
                    tokens: TokenHasher::new(keys.token_pepper),
                    sealer: sealer.clone(),
                },
                AuthConfig {
                    policy: PasswordPolicy {
                        min_chars: a.password_min,
                        max_chars: a.password_max,
                    },
                    verification_ttl: Duration::seconds(a.verification_ttl_secs.into()),
                    reset_ttl: Duration::seconds(a.reset_ttl_secs.into()),
                    public_url: public_url.clone(),
                    letters: settings.mail.letters()?,
                },
            )
            .with_events(events.clone()),
        );
        // A process whose index key differs from the one the accounts were indexed with would
        // find nobody and let addresses register twice: it stops here instead.
        auth.accounts()
            .check_index_key()
            .await
            .context("secrets.token_pepper")?;
        // Accounts an earlier version stored in the clear are sealed before anything is served.
        let sealed = auth
            .accounts()
            .seal_clear()
            .await
            .context("sealing accounts stored in the clear")?;
        if sealed > 0 {
            tracing::info!(accounts = sealed, "sealed accounts stored in the clear");
        }

        let device_store = devices.clone();
        let devices = device_service(&settings, devices, address_pool, &sealer, &events)?;
        let policy = settings.session.policy();

        let sessions = Arc::new(SessionManager::new(sessions, sealer, policy));
        let public_origin = origin_of(&public_url);
        let layer_clock = clock.clone();
        let visitors = VisitorLayer::builder(
            sessions.clone(),
            auth.clone(),
            Csrf::new(keys.csrf),
            &public_origin,
        )
        .post_budget(limits.clone())
        .events(events.clone())
        .clock(move || layer_clock.now())
        .build();
        let pay = &settings.payments;
        let webhooks = Webhooks::new(
            pay.verifier(),
            processed_events.clone(),
            subscriptions.clone(),
            pay.webhook_policy(),
        )
        .with_events(events.clone());
        let subscription_store = subscriptions.clone();
        let billing = Billing::new(
            pay.plans.clone(),
            gateway(pay)?,
            subscriptions,
            format!("{public_url}/billing"),
        );
        let admin = Arc::new(AdminService::new(
            auth.clone(),
            sessions.clone(),
            AuditLog::new(audit, audit_key),
            events.clone(),
        ));
        let privacy = Arc::new(
            PrivacyService::new(
                auth.clone(),
                sessions.clone(),
                device_store,
                subscription_store,
                admin.audit_log().clone(),
            )
            .with_device_service(devices.clone()),
        );
        let metrics_access = settings.metrics.access();
        let login_clock = clock.clone();
        let login = LoginFlow::new(auth.clone(), sessions.clone(), limits.clone())
            .events(events.clone())
            .clock(move || login_clock.now());
        Ok(Self {
            proxies: TrustedProxies::new(
                settings.http.trusted_proxies.clone(),
                settings.http.forwarded_headers,
            ),
            sessions,
            visitors,
            login,
            auth,
            clock,
            public_origin,
            deferred: Deferred::start(DEFERRED_QUEUE)?,
            webhooks,
            billing,
            processed_events,
            public_url,
            probes,
            tokens,
            limits,
            settings,
            devices,
            admin,
            privacy,
            events,
            metrics,
            metrics_access,
            mail_queue,
            _background: background,
        })
    }
}

/// The adapters `settings` choose. PostgreSQL is checked for a schema this build knows; Redis, when
/// configured, takes sessions and rate limits whatever the main store is.
async fn stores(settings: &Settings, events: &Events) -> anyhow::Result<Stores> {
    let mut stores = match settings.store.kind {
        StoreKind::Memory => Stores {
            sessions: Arc::new(MemorySessions::default()),
            accounts: Arc::new(MemoryAccounts::default()),
            tokens: Arc::new(MemoryTokens::default()),
            rate_limits: Arc::new(MemoryRateLimits::default()),
            processed_events: Arc::new(MemoryProcessedEvents::default()),
            subscriptions: Arc::new(MemorySubscriptions::default()),
            devices: Arc::new(phaze_store_memory::MemoryDevices::default()),
            address_pool: Arc::new(phaze_store_memory::MemoryAddressPool::default()),
            audit: Arc::new(phaze_store_memory::MemoryAudit::default()),
            probes: Vec::new(),
            background: Vec::new(),
        },
        StoreKind::Fs => {
            // Each adapter keeps to its own subdirectory of the data directory.
            let dir = &settings.store.data_dir;
            let sharing = if settings.store.share_data_dir {
                Sharing::Shared
            } else {
                Sharing::Exclusive
            };
            let open = if settings.store.allow_network_fs {
                DataDir::open_on_network_fs
            } else {
                DataDir::open
            };
            let data = open(dir, sharing).context(
                "store.data_dir: stop the process using it, give each process its own, or set \
                 store.share_data_dir = true on every one",
            )?;
            data.report_to(events.clone());
            Stores {
                sessions: Arc::new(data.sessions()?),
                accounts: Arc::new(data.accounts()?),
                tokens: Arc::new(data.tokens()?),
                rate_limits: Arc::new(data.rate_limits()?),
                processed_events: Arc::new(data.processed_events()?),
                subscriptions: Arc::new(data.subscriptions()?),
                devices: Arc::new(data.devices()?),
                address_pool: Arc::new(data.address_pool()?),
                audit: Arc::new(data.audit()?),
                probes: ["sessions", "accounts", "tokens", "ratelimits", "payments"]
                    .map(|d| Probe::Dir(dir.join(d)))
                    .into(),
                background: Vec::new(),
            }
        }
        StoreKind::Postgres => {
            let pg = Postgres::new(&pg_config(settings))?;
            pg.check_schema().await?;
            let (accounts, background): (Arc<dyn AccountStore>, _) =
                match settings.store.postgres.account_cache_size {
                    0 => (Arc::new(pg.accounts()), Vec::new()),
                    size => {
                        let (accounts, watcher) = pg.cached_accounts(size);
                        let task = tokio::spawn(watcher.run(|event| match event {
                            WatchEvent::Listening => {
                                tracing::info!("account cache on: listening for account changes")
                            }
                            WatchEvent::Lost(e) => tracing::warn!(
                                error = %crate::errors::chain(&e),
                                "account cache off: not listening for account changes; retrying"
                            ),
                        }));
                        (Arc::new(accounts), vec![Background(task)])
                    }
                };
            Stores {
                sessions: Arc::new(pg.sessions()),
                accounts,
                tokens: Arc::new(pg.tokens()),
                rate_limits: Arc::new(pg.rate_limits()),
                // Processed event ids must outlast a Redis restart: they stay here with Redis too.
                processed_events: Arc::new(pg.processed_events()),
                subscriptions: Arc::new(pg.subscriptions()),
                devices: Arc::new(pg.devices()),
                address_pool: Arc::new(pg.address_pool()),
                audit: Arc::new(pg.audit()),
                probes: vec![Probe::Postgres(pg)],
                background,
            }
        }
    };
    if let Some(config) = redis_config(settings) {
        let ca = &settings.store.redis.ca_file;
        let redis = if ca.as_os_str().is_empty() {
            Redis::new(&config)?
        } else {
            let pem = std::fs::read(ca)
                .with_context(|| format!("store.redis.ca_file: cannot read {}", ca.display()))?;
            Redis::with_tls_ca(&config, &pem)?
        };
        stores.sessions = Arc::new(redis.sessions());
        stores.rate_limits = Arc::new(redis.rate_limits());
        stores.probes.push(Probe::Redis(redis));
    }
    Ok(stores)
}

/// What [`AppState::reseal_stored`] did: accounts, and devices when they are configured.
#[derive(Clone, Copy, Debug)]
pub struct Resealing {
    /// Accounts (addresses, names, TOTP secrets).
    pub accounts: phaze_auth::Rotation,
    /// Device private keys, when devices are configured.
    pub devices: Option<phaze_devices::Resealed>,
}

impl Resealing {
    /// Records no configured key opens.
    pub fn unopened(&self) -> usize {
        self.accounts.unopened + self.devices.map_or(0, |d| d.unopened)
    }
}

impl AppState {
    /// Seals every stored address, display name, TOTP secret and device private key that an
    /// older session key sealed again under the newest one. Every process does it in the
    /// background when it starts; `phaze-portal keys rotate` does it in the foreground.
    pub async fn reseal_stored(&self) -> anyhow::Result<Resealing> {
        let accounts = self.auth.accounts().rotate().await?;
        let devices = match &self.devices {
            Some(d) => Some(d.reseal_keys().await?),
            None => None,
        };
        Ok(Resealing { accounts, devices })
    }

    /// Whether a Stripe key is configured, so checkout and the billing portal can work.
    pub fn payments_configured(&self) -> bool {
        !self
            .settings
            .payments
            .stripe_secret_key
            .expose_secret()
            .is_empty()
    }
}

/// Stripe's API as `[payments]` configures it; without a secret key, a gateway that says so.
fn gateway(pay: &phaze_payments::PaymentSettings) -> anyhow::Result<Arc<dyn PaymentGateway>> {
    if pay.stripe_secret_key.expose_secret().is_empty() {
        return Ok(Arc::new(Unconfigured));
    }
    let config = phaze_stripe::StripeConfig {
        api_base: pay.stripe_api_base.clone(),
        secret_key: pay.stripe_secret_key.clone(),
        timeout: std::time::Duration::from_millis(pay.stripe_timeout_ms.into()),
        retries: pay.stripe_retries,
        ..phaze_stripe::StripeConfig::new(pay.stripe_secret_key.clone())
    };
    Ok(Arc::new(
        phaze_stripe::StripeGateway::new(config).context("payments.stripe_api_base")?,
    ))
}

/// The gateway of a portal with no Stripe key: every operation is unavailable (503), and the
/// billing page says payments are not set up.
struct Unconfigured;

#[async_trait::async_trait(?Send)]
impl PaymentGateway for Unconfigured {
    async fn checkout(
        &self,
        _: &phaze_payments::CheckoutRequest,
    ) -> Result<phaze_payments::Hosted, phaze_payments::GatewayError> {
        Err(not_configured())
    }

    async fn billing_portal(
        &self,
        _: &phaze_payments::BillingPortalRequest,
    ) -> Result<phaze_payments::Hosted, phaze_payments::GatewayError> {
        Err(not_configured())
    }
}

fn not_configured() -> phaze_payments::GatewayError {
    phaze_payments::GatewayError::Unavailable("payments.stripe_secret_key is not set".into())
}

/// `[store.postgres]` as the adapter takes it.
pub fn pg_config(settings: &Settings) -> PgConfig {
    let p = &settings.store.postgres;
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    PgConfig {
        url: p.url.expose_secret().to_owned(),
        schema: nonempty(&p.schema),
        ca_file: (!p.ca_file.as_os_str().is_empty()).then(|| p.ca_file.clone()),
        pool_size: p.pool_size,
        connect_timeout: std::time::Duration::from_millis(p.connect_timeout_ms),
        wait_timeout: std::time::Duration::from_millis(p.wait_timeout_ms),
        query_timeout: std::time::Duration::from_millis(p.query_timeout_ms),
    }
}

/// `[store.redis]` as the adapter takes it; `None` when no URL is set.
fn redis_config(settings: &Settings) -> Option<RedisConfig> {
    let r = &settings.store.redis;
    let url = r.url.expose_secret();
    (!url.is_empty()).then(|| RedisConfig {
        url: url.to_owned(),
        prefix: r.prefix.clone(),
        // Only a multi-threaded runtime uses a pool of several; the portal's runtimes are all
        // single-threaded, and each of their threads keeps one connection (pipelined).
        pool_size: 1,
        connect_timeout: std::time::Duration::from_millis(r.connect_timeout_ms),
        wait_timeout: std::time::Duration::from_millis(r.wait_timeout_ms),
        response_timeout: std::time::Duration::from_millis(r.response_timeout_ms),
    })
}

/// A sub-key of `master` for `purpose` (HMAC-SHA256 as a PRF).
fn derive(master: &crate::secrets::Key, purpose: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master.expose_secret())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

/// `scheme://authority` of a URL, lower case: what browsers send as `Origin` for pages under it.
fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

#[cfg(test)]
mod origin_tests {
    #[test]
    fn the_origin_is_scheme_and_authority() {
        for (url, origin) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("https://Portal.Example", "https://portal.example"),
            ("https://portal.example/customers", "https://portal.example"),
            ("http://[::1]:8080/x?y#z", "http://[::1]:8080"),
        ] {
            assert_eq!(super::origin_of(url), origin, "{url}");
        }
    }
}
