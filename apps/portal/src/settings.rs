//! Typed configuration: built-in defaults, then an optional TOML file (`--config`), then
//! `PHAZE__…` environment variables (`__` between nested keys). Validated once at start-up: a bad
//! value stops the process with one line naming the key.

use ipnet::IpNet;
use phaze_payments::PaymentSettings;
use phaze_ratelimit::{ForwardedHeaders, RateLimitPolicy};
use phaze_sessions::SessionSettings;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Everything the portal can be told.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Listener, public URL, proxies, limits.
    pub http: HttpSettings,
    /// Where accounts, tokens and sessions live.
    pub store: StoreSettings,
    /// Outgoing mail.
    pub mail: MailSettings,
    /// Session lifetimes.
    pub session: SessionSettings,
    /// Passwords and verification.
    pub auth: AuthSettings,
    /// Request budgets.
    pub ratelimit: RateLimitPolicy,
    /// Stripe: webhook secrets, API, plans.
    pub payments: PaymentSettings,
    /// VPN devices: the address pool, the server, provisioning.
    pub devices: DeviceSettings,
    /// Keys; generated into the data directory when not given.
    pub secrets: SecretSettings,
    /// Logging.
    pub log: LogSettings,
    /// `/metrics`: who may read it.
    pub metrics: MetricsSettings,
    /// How long records are kept.
    pub retention: RetentionSettings,
}

/// `[retention]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSettings {
    /// Audit entries older than this many days are purged (the purge is itself an entry, so the
    /// chain still verifies); 0 keeps them forever.
    pub audit_days: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self { audit_days: 365 }
    }
}

/// `[metrics]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Count requests and expose `/metrics` at all.
    pub enabled: bool,
    /// Clients (as the trusted-proxy rules decide them) that may read `/metrics` without a token,
    /// e.g. `["127.0.0.1/32", "10.0.0.0/8"]`. Empty by default: a proxy on the same host would
    /// otherwise make every visitor a local one.
    pub allow_networks: Vec<IpNet>,
    /// `Authorization: Bearer <token>` opens `/metrics` from anywhere; at least 32 characters.
    /// Empty: no token.
    pub bearer_token: SecretString,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_networks: Vec::new(),
            bearer_token: SecretString::default(),
        }
    }
}

impl MetricsSettings {
    /// The access rule of `/metrics`.
    pub fn access(&self) -> phaze_actix::metrics::MetricsAccess {
        let token = self.bearer_token.expose_secret().trim();
        phaze_actix::metrics::MetricsAccess::new(
            self.allow_networks.clone(),
            (!token.is_empty()).then(|| SecretString::from(token.to_owned())),
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let token = self.bearer_token.expose_secret().trim();
        if !token.is_empty() && token.chars().count() < 32 {
            return Err(ConfigError(
                "metrics.bearer_token: must be at least 32 characters (or empty)".into(),
            ));
        }
        Ok(())
    }
}

/// `[devices]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceSettings {
    /// The VPN server's public key (base64). Empty: the devices page says the VPN is not set up
    /// yet and adds nothing.
    pub server_public_key: String,
    /// `host:port` devices connect to.
    pub endpoint: String,
    /// DNS servers inside the tunnel (`["10.66.0.1"]`).
    pub dns: Vec<IpAddr>,
    /// What devices route through the tunnel (`["0.0.0.0/0", "::/0"]`).
    pub allowed_ips: Vec<ipnet::IpNet>,
    /// Keepalive seconds, 0 for none (25).
    pub keepalive_secs: u16,
    /// The tunnel networks (`10.66.0.0/16`, `fd66::/64`).
    pub pool_v4: ipnet::Ipv4Net,
    /// The tunnel networks (`10.66.0.0/16`, `fd66::/64`).
    pub pool_v6: ipnet::Ipv6Net,
    /// Devices per account (5).
    pub limit_per_account: u32,
    /// `file` (a peer list for a sidecar, the default), `wg` (`wg set` on this machine) or
    /// `memory` (nothing outside the process: tests and demos).
    pub provisioner: String,
    /// Where the `file` provisioner writes `peers.conf`; empty: `<data_dir>/wireguard`.
    pub peers_dir: PathBuf,
    /// The `wg` program, by absolute path (`/usr/bin/wg`).
    pub wg_path: PathBuf,
    /// The WireGuard interface (`wg0`).
    pub wg_interface: String,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        let pool = phaze_devices::PoolSettings::default();
        Self {
            server_public_key: String::new(),
            endpoint: String::new(),
            dns: vec![IpAddr::from([10, 66, 0, 1])],
            allowed_ips: ["0.0.0.0/0", "::/0"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            keepalive_secs: 25,
            pool_v4: pool.v4,
            pool_v6: pool.v6,
            limit_per_account: 5,
            provisioner: "file".into(),
            peers_dir: PathBuf::new(),
            wg_path: PathBuf::from("/usr/bin/wg"),
            wg_interface: "wg0".into(),
        }
    }
}

impl DeviceSettings {
    /// The server as device configurations name it; `None` while no server key is set.
    pub fn server(&self) -> Option<phaze_devices::ServerSettings> {
        let key = phaze_devices::PublicKey::from_base64(self.server_public_key.trim())?;
        Some(phaze_devices::ServerSettings {
            public_key: key,
            endpoint: self.endpoint.trim().to_owned(),
            dns: self.dns.clone(),
            allowed_ips: self.allowed_ips.clone(),
            keepalive: (self.keepalive_secs > 0).then_some(self.keepalive_secs),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("devices.{key}: {why}")));
        if !self.server_public_key.trim().is_empty() {
            if self.server().is_none() {
                return fail(
                    "server_public_key",
                    "must be a WireGuard public key (base64 of 32 bytes)",
                );
            }
            if !phaze_devices::ServerSettings::endpoint_is_valid(self.endpoint.trim()) {
                return fail("endpoint", "must be host:port");
            }
        }
        if self.limit_per_account == 0 {
            return fail("limit_per_account", "must be at least 1");
        }
        if !matches!(self.provisioner.as_str(), "file" | "wg" | "memory") {
            return fail("provisioner", "must be file, wg or memory");
        }
        if self.provisioner == "wg" {
            if !self.wg_path.is_absolute() {
                return fail("wg_path", "must be an absolute path");
            }
            if phaze_wireguard::Interface::parse(&self.wg_interface).is_none() {
                return fail(
                    "wg_interface",
                    "must be an interface name (1-15 of A-Z a-z 0-9 _ - . = +)",
                );
            }
        }
        Ok(())
    }
}

/// `[http]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on; 0 lets the OS pick (tests).
    pub port: u16,
    /// The portal's public origin, used in mailed links and accepted as `Origin`. Empty: derived
    /// from the listener (`http://host:port`).
    pub public_url: String,
    /// Proxies whose forwarding headers are believed, as CIDRs.
    pub trusted_proxies: Vec<IpNet>,
    /// The header family those proxies set: `x-forwarded-for` (`X-Forwarded-For` and
    /// `X-Forwarded-Proto`, the default) or `forwarded` (RFC 7239). The other family is ignored,
    /// because proxies pass it through from the client untouched.
    pub forwarded_headers: ForwardedHeaders,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// HTTPS served directly (rustls); off while `cert_file` is empty.
    pub tls: TlsSettings,
}

/// `[http.tls]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// The certificate chain (PEM, leaf first). Empty: plain HTTP.
    pub cert_file: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often the two files are checked for a new certificate (renewals take effect without
    /// a restart), in seconds.
    pub reload_secs: u32,
    /// A plain-HTTP port on `http.host` that only redirects to HTTPS (308); 0: none.
    pub redirect_port: u16,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            reload_secs: 60,
            redirect_port: 0,
        }
    }
}

impl TlsSettings {
    /// Whether HTTPS is configured.
    pub fn enabled(&self) -> bool {
        !self.cert_file.as_os_str().is_empty()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("http.tls.{key}: {why}")));
        if self.enabled() == self.key_file.as_os_str().is_empty() {
            return fail("key_file", "give both cert_file and key_file, or neither");
        }
        if self.reload_secs == 0 {
            return fail("reload_secs", "must be at least 1");
        }
        if self.redirect_port != 0 && !self.enabled() {
            return fail("redirect_port", "needs cert_file and key_file");
        }
        Ok(())
    }
}

/// `[store]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `fs` (the embedded default), `memory` (state dies with the process) or `postgres` (the
    /// cluster shape).
    pub kind: StoreKind,
    /// Data directory of the `fs` store, and home of generated secrets and the outbox.
    pub data_dir: PathBuf,
    /// `false` (default): with `kind = "fs"`, this process owns the data directory alone (a second
    /// process on it is refused at start) and answers hot reads from memory. `true`: several
    /// processes share it, every one of them with this set, and each hot read checks its file.
    pub share_data_dir: bool,
    /// Allow the data directory on a network filesystem (NFS, SMB/CIFS…), which is refused at
    /// start by default: its locks and renames are not reliably atomic across clients.
    pub allow_network_fs: bool,
    /// `[store.postgres]`: used when `kind = "postgres"`.
    pub postgres: PostgresSettings,
    /// `[store.redis]`: when `url` is set, sessions and rate limits live in Redis whatever `kind`.
    pub redis: RedisSettings,
}

/// `[store.postgres]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresSettings {
    /// `postgres://user@host:port/db?sslmode=require`; a password belongs in the environment
    /// (`PHAZE__STORE__POSTGRES__URL`), never in a file under version control.
    pub url: SecretString,
    /// Schema (search path) of every connection; empty: the server's default (`public`).
    pub schema: String,
    /// A private CA's certificate (PEM), trusted instead of the public roots and checked even
    /// with `sslmode=prefer`; empty: the public roots (with `sslmode=require`).
    pub ca_file: PathBuf,
    /// Connections per process (16).
    pub pool_size: usize,
    /// Connecting gives up after this many milliseconds (3000).
    pub connect_timeout_ms: u64,
    /// Waiting for a free pooled connection gives up after this many milliseconds (2000).
    pub wait_timeout_ms: u64,
    /// The server cancels a statement or a lock wait after this many milliseconds (2000).
    pub query_timeout_ms: u64,
    /// Accounts each process caches by id for the page path, kept in step with the table by
    /// `LISTEN`/`NOTIFY` (10000); 0: every page reads the table.
    pub account_cache_size: usize,
}

/// `[store.redis]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:6379` or `rediss://…` (TLS); empty: no Redis.
    pub url: SecretString,
    /// Every key starts with this, so deployments can share one Redis (`phaze:`).
    pub prefix: String,
    /// For `rediss://` with a private CA: its certificate (PEM), trusted instead of the public
    /// roots. Empty: the public roots.
    pub ca_file: PathBuf,
    /// Connecting gives up after this many milliseconds (1000).
    pub connect_timeout_ms: u64,
    /// Waiting for the worker's connection while it is opened or checked gives up after this many
    /// milliseconds (1000).
    pub wait_timeout_ms: u64,
    /// A command without an answer fails after this many milliseconds (1000).
    pub response_timeout_ms: u64,
}

/// Which adapters back the ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One file per record under `store.data_dir`.
    Fs,
    /// Process memory.
    Memory,
    /// PostgreSQL (`[store.postgres]`), shared by every portal process.
    Postgres,
}

/// `[mail]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// Outbox directory, one `<id>.eml` per message. Empty: `<data_dir>/outbox`.
    pub outbox_dir: PathBuf,
    /// `From:` of every message.
    pub from: String,
    /// A directory of mail templates that replace the compiled-in ones of the same name
    /// (`templates/mail/`). Empty: the compiled-in texts.
    pub templates_dir: PathBuf,
    /// `[mail.smtp]`: the relay. No `host`: mail stays in the outbox directory.
    pub smtp: phaze_smtp::SmtpSettings,
    /// Failed attempts after which a message is a dead letter (10).
    pub max_attempts: u32,
    /// Seconds to wait after a first failure; doubled after each further one (30).
    pub retry_secs: u32,
    /// The longest wait between attempts, in seconds (3600).
    pub retry_max_secs: u32,
    /// How often the courier looks for retries that came due, in seconds (5); new mail wakes it
    /// at once.
    pub poll_secs: u32,
}

impl MailSettings {
    /// The courier's retry schedule.
    pub fn backoff(&self) -> phaze_mail::Backoff {
        phaze_mail::Backoff {
            first: time::Duration::seconds(self.retry_secs.max(1).into()),
            max: time::Duration::seconds(self.retry_max_secs.max(self.retry_secs).max(1).into()),
            max_attempts: self.max_attempts.max(1),
        }
    }

    /// The mail templates: the compiled-in ones, with `templates_dir`'s files in their place.
    /// A template there that does not parse or render stops the start-up, by name.
    pub fn letters(&self) -> Result<phaze_auth::Letters, phaze_auth::LetterError> {
        if self.templates_dir.as_os_str().is_empty() {
            return Ok(phaze_auth::Letters::default());
        }
        phaze_auth::Letters::with_overrides(&self.templates_dir)
    }
}

/// `[auth]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Shortest password, in characters (12).
    pub password_min: usize,
    /// Longest password, in characters (128).
    pub password_max: usize,
    /// argon2id memory in KiB (19456).
    pub argon2_m_kib: u32,
    /// argon2id iterations (2).
    pub argon2_t: u32,
    /// argon2id lanes (1).
    pub argon2_p: u32,
    /// Password hashes computed at once; 0 means one per core. Each takes `argon2_m_kib` of memory.
    pub hash_concurrency: usize,
    /// Lifetime of an email verification link, in seconds (24 h).
    pub verification_ttl_secs: u32,
    /// Lifetime of a password reset link, in seconds (1 h).
    pub reset_ttl_secs: u32,
}

/// `[secrets]`: base64 of 32 random bytes each (`openssl rand -base64 32`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretSettings {
    /// Session sealing keys; the first seals, all open. Empty: generated in `dir`.
    pub session_keys: Vec<SecretString>,
    /// Key of the CSRF token MAC. Empty: generated in `dir`.
    pub csrf_key: Option<SecretString>,
    /// Pepper of the token hashes. Empty: generated in `dir`.
    pub token_pepper: Option<SecretString>,
    /// Where generated keys are kept (mode 0600). Empty: `<data_dir>/secrets`.
    pub dir: PathBuf,
}

/// `[log]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `info,phaze_portal=debug`; `RUST_LOG` wins if set.
    pub filter: String,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8080,
            public_url: String::new(),
            trusted_proxies: Vec::new(),
            forwarded_headers: ForwardedHeaders::default(),
            max_body_bytes: 16 * 1024,
            workers: 0,
            tls: TlsSettings::default(),
        }
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            kind: StoreKind::Fs,
            data_dir: PathBuf::from("./var"),
            share_data_dir: false,
            allow_network_fs: false,
            postgres: PostgresSettings::default(),
            redis: RedisSettings::default(),
        }
    }
}

impl Default for PostgresSettings {
    fn default() -> Self {
        Self {
            url: SecretString::default(),
            schema: String::new(),
            ca_file: PathBuf::new(),
            pool_size: 16,
            connect_timeout_ms: 3000,
            wait_timeout_ms: 2000,
            query_timeout_ms: 2000,
            account_cache_size: 10_000,
        }
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: SecretString::default(),
            prefix: "phaze:".into(),
            ca_file: PathBuf::new(),
            connect_timeout_ms: 1000,
            wait_timeout_ms: 1000,
            response_timeout_ms: 1000,
        }
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            outbox_dir: PathBuf::new(),
            from: "Phaze <no-reply@phaze.localhost>".into(),
            templates_dir: PathBuf::new(),
            smtp: phaze_smtp::SmtpSettings::default(),
            max_attempts: 10,
            retry_secs: 30,
            retry_max_secs: 3600,
            poll_secs: 5,
        }
    }
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            password_min: 12,
            password_max: 128,
            argon2_m_kib: 19_456,
            argon2_t: 2,
            argon2_p: 1,
            hash_concurrency: 0,
            verification_ttl_secs: 24 * 3600,
            reset_ttl_secs: 3600,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// A configuration problem, phrased for one line on stderr.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Defaults < `file` (TOML, if given) < `PHAZE__…` environment variables; then validated.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, vars)
    }

    /// [`Settings::load`] with the environment given explicitly (tests).
    pub fn load_from(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: config::Map<String, String> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("PHAZE__"))
            .collect();
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let env = config::Environment::with_prefix("PHAZE")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("http.trusted_proxies")
            .with_list_parse_key("secrets.session_keys")
            .with_list_parse_key("payments.webhook_secrets")
            .with_list_parse_key("metrics.allow_networks")
            .try_parsing(true)
            .source(Some(env));
        let mut root: config::Map<String, config::Value> = builder
            .add_source(env)
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError(e.to_string()))?;
        secret_files::resolve(&mut root)?;
        let settings: Settings = config::Value::new(None, config::ValueKind::Table(root))
            .try_deserialize()
            .map_err(|e| ConfigError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Settings for tests: memory stores, port 0, cheap argon2id, keys generated in memory.
    pub fn for_tests() -> Self {
        let mut s = Self::default();
        s.http.port = 0;
        s.store.kind = StoreKind::Memory;
        s.auth.argon2_m_kib = 64;
        s.auth.argon2_t = 1;
        // Tests drive many logins from 127.0.0.1; the limiter's own tests restore the defaults.
        s.ratelimit.login_per_client = 10_000;
        s.ratelimit.register_per_client = 10_000;
        s.ratelimit.post_per_client = 10_000;
        s.ratelimit.verify_per_client = 10_000;
        s.ratelimit.password_change_per_account = 10_000;
        s.ratelimit.profile_api_per_account = 10_000;
        s.ratelimit.reset_per_client = 10_000;
        s.ratelimit.challenge_difficulty_bits = 8;
        // A VPN server that exists only in the process.
        s.devices.server_public_key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".into();
        s.devices.endpoint = "vpn.example.com:51820".into();
        s.devices.provisioner = "memory".into();
        s
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        if let Err(e) = self.session.validate() {
            return fail(e.key, e.why);
        }
        if let Err(e) = self.ratelimit.validate() {
            return fail(e.key, e.why);
        }
        if let Err(e) = self.payments.validate() {
            return Err(ConfigError(e));
        }
        self.devices.validate()?;
        self.metrics.validate()?;
        self.http.tls.validate()?;
        let a = &self.auth;
        if a.password_min < 8 {
            return fail("auth.password_min", "must be at least 8");
        }
        if a.password_max < a.password_min || a.password_max > 1024 {
            return fail(
                "auth.password_max",
                "must be between auth.password_min and 1024",
            );
        }
        if argon2_params_invalid(a) {
            return fail(
                "auth.argon2_m_kib",
                "argon2 parameters out of range (m >= 8 * p, t >= 1, p >= 1)",
            );
        }
        if self.http.max_body_bytes < 1024 || self.http.max_body_bytes > 16 * 1024 * 1024 {
            return fail("http.max_body_bytes", "must be between 1024 and 16777216");
        }
        let url = &self.http.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return fail("http.public_url", "must start with http:// or https://");
        }
        self.validate_stores()?;
        if !is_mailbox(&self.mail.from) {
            return fail(
                "mail.from",
                "must be an address like `Phaze <no-reply@example.com>`",
            );
        }
        Ok(())
    }

    /// Store choices that cannot work: no URL for PostgreSQL, zero pools or timeouts, and keys
    /// left to be generated per process where processes must share them.
    fn validate_stores(&self) -> Result<(), ConfigError> {
        let fail = |key: &str, why: &str| Err(ConfigError(format!("{key}: {why}")));
        let pg = &self.store.postgres;
        let redis = &self.store.redis;
        if self.store.kind == StoreKind::Postgres {
            let url = pg.url.expose_secret();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return fail(
                    "store.postgres.url",
                    "store.kind = \"postgres\" needs a postgres:// URL",
                );
            }
            // Every process must seal, sign and pepper with the same keys: generated per process
            // they would silently log users out on every other process.
            let s = &self.secrets;
            if s.session_keys.is_empty() || s.csrf_key.is_none() || s.token_pepper.is_none() {
                return fail(
                    "secrets",
                    "store.kind = \"postgres\" runs several processes: set secrets.session_keys, \
                     secrets.csrf_key and secrets.token_pepper (the same on every process)",
                );
            }
        }
        if pg.pool_size == 0
            || pg.connect_timeout_ms == 0
            || pg.wait_timeout_ms == 0
            || pg.query_timeout_ms == 0
        {
            return fail(
                "store.postgres",
                "pool_size and the timeouts must be above 0",
            );
        }
        let url = redis.url.expose_secret();
        if !(url.is_empty() || url.starts_with("redis://") || url.starts_with("rediss://")) {
            return fail("store.redis.url", "must start with redis:// or rediss://");
        }
        if redis.connect_timeout_ms == 0
            || redis.wait_timeout_ms == 0
            || redis.response_timeout_ms == 0
        {
            return fail("store.redis", "the timeouts must be above 0");
        }
        Ok(())
    }

    /// The public origin: `http.public_url` without a trailing slash, or derived from the listener.
    pub fn public_url(&self, bound_port: u16) -> String {
        if self.http.public_url.is_empty() {
            let scheme = if self.http.tls.enabled() {
                "https"
            } else {
                "http"
            };
            match self.http.host {
                IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{bound_port}"),
                IpAddr::V4(ip) => format!("{scheme}://{ip}:{bound_port}"),
            }
        } else {
            self.http.public_url.trim_end_matches('/').to_owned()
        }
    }

    /// The data directory's `outbox` unless `mail.outbox_dir` is set.
    pub fn outbox_dir(&self) -> PathBuf {
        if self.mail.outbox_dir.as_os_str().is_empty() {
            self.store.data_dir.join("outbox")
        } else {
            self.mail.outbox_dir.clone()
        }
    }

    /// The data directory's `secrets` unless `secrets.dir` is set.
    pub fn secrets_dir(&self) -> PathBuf {
        if self.secrets.dir.as_os_str().is_empty() {
            self.store.data_dir.join("secrets")
        } else {
            self.secrets.dir.clone()
        }
    }
}

fn argon2_params_invalid(a: &AuthSettings) -> bool {
    a.argon2_p == 0 || a.argon2_t == 0 || a.argon2_m_kib < 8 * a.argon2_p
}

/// `Name <local@domain>` or `local@domain`: a typo in `mail.from` stops the process at start-up
/// instead of failing every mail.
fn is_mailbox(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(i), Some(rest)) => rest.get(i + 1..).unwrap_or_default(),
        (None, None) => s.trim(),
        _ => return false,
    };
    phaze_auth::Email::parse(addr).is_some() && !s.contains(['\r', '\n'])
}

mod secret_files;

#[cfg(test)]
mod tests;
