//! `phaze-portal [--config FILE] [serve | migrate | admin grant EMAIL | admin revoke EMAIL | audit verify | keys rotate]`

use anyhow::Context as _;
use phaze_portal::settings::{LogFormat, Settings, StoreKind};
use phaze_portal::state::AppState;
use phaze_portal::Application;
use std::ffi::OsStr;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const USAGE: &str = "usage: phaze-portal [--config FILE] [serve | migrate | admin grant EMAIL | admin revoke EMAIL | audit verify | keys rotate]";

/// `--help`: the usage line, then what each part does.
const HELP: &str = "
  serve                run the portal (the default)
  migrate              apply the database migrations of the configured store
  admin grant EMAIL    make the account an admin; ends its sessions
  admin revoke EMAIL   take the admin flag away; ends its sessions
  audit verify         check the audit log's hash chain; names the first bad entry (exit 1)
  keys rotate          seal every stored address, name and TOTP secret again under the first
                       of secrets.session_keys, beside live traffic (exit 1 if some could not be)
  -c, --config FILE    read settings from a TOML file; PHAZE__* environment variables override it
  -h, --help           print this help";

#[derive(Debug, PartialEq)]
enum Command {
    /// `--help` or `-h`: usage on stdout, exit 0.
    Help,
    Serve,
    Migrate,
    Admin {
        grant: bool,
        email: String,
    },
    AuditVerify,
    KeysRotate,
}

fn parse_args(args: &[String]) -> Result<(Option<PathBuf>, Command), String> {
    let mut config = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                config = Some(PathBuf::from(it.next().ok_or("--config needs a file")?));
            }
            "--help" | "-h" => return Ok((None, Command::Help)),
            other => rest.push(other),
        }
    }
    let command = match rest.as_slice() {
        [] | ["serve"] => Command::Serve,
        ["migrate"] => Command::Migrate,
        ["audit", "verify"] => Command::AuditVerify,
        ["keys", "rotate"] => Command::KeysRotate,
        ["admin", action @ ("grant" | "revoke"), email] => Command::Admin {
            grant: *action == "grant",
            email: (*email).to_owned(),
        },
        _ => return Err(USAGE.to_owned()),
    };
    Ok((config, command))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, command) = match parse_args(&args) {
        Ok((_, Command::Help)) => {
            println!("{USAGE}\n{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("phaze-portal: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&settings);
    let result = actix_web::rt::System::new().block_on(async move {
        match command {
            // Answered before the settings were read.
            Command::Help => Ok(()),
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(&settings).await,
            Command::Admin { grant, email } => admin(settings, grant, &email).await,
            Command::AuditVerify => audit_verify(settings).await,
            Command::KeysRotate => keys_rotate(settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("phaze-portal: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.log.filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The subscriber writes to stdout: colour only when that is a terminal, so a log redirected
    // to a file or a pipe carries no escape codes.
    let ansi = use_colour(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match settings.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Colour for a terminal, unless `NO_COLOR` is set to anything but the empty string
/// (<https://no-color.org>).
fn use_colour(is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    is_terminal && no_color.is_none_or(OsStr::is_empty)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(settings)
        .await
        .context("starting the portal")?;
    tracing::info!(address = %app.local_addr(), "phaze-portal listening");
    app.run().await.context("serving")
}

/// Applies the embedded migrations PostgreSQL lacks; the other stores have no schema.
async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    match settings.store.kind {
        StoreKind::Fs | StoreKind::Memory => {
            println!(
                "store {:?} keeps one file per record and needs no migration",
                settings.store.kind
            );
        }
        StoreKind::Postgres => {
            let pg =
                phaze_store_postgres::Postgres::new(&phaze_portal::state::pg_config(settings))?;
            let applied = pg.migrate().await.context("migrating PostgreSQL")?;
            if applied.is_empty() {
                println!("PostgreSQL schema is up to date");
            }
            for version in applied {
                println!("applied {version}");
            }
        }
    }
    Ok(())
}

/// The portal's wiring, for a command that is not serving.
async fn state(settings: Settings) -> anyhow::Result<AppState> {
    let public_url = settings.public_url(settings.http.port);
    AppState::build(
        settings,
        public_url,
        Arc::new(phaze_portal::clock::SystemClock),
    )
    .await
}

/// Grants or revokes the admin flag, and ends the user's sessions: a privilege change takes
/// effect on the next login, never on a session that predates it. Recorded in the audit log
/// with the command line as the actor.
async fn admin(settings: Settings, grant: bool, email: &str) -> anyhow::Result<()> {
    use phaze_admin::AdminError;
    let state = state(settings).await?;
    let now = state.clock.now();
    let account = match state.admin.set_admin_by_operator(email, grant, now).await {
        Err(AdminError::InvalidEmail) => anyhow::bail!("not an email address"),
        Err(AdminError::NoAccount) => anyhow::bail!("no account for {email}"),
        other => other?,
    };
    println!(
        "{}: admin {}; its sessions were ended",
        account.email,
        if grant { "granted" } else { "revoked" }
    );
    Ok(())
}

/// Walks the audit log's chain: exit 0 and the count if intact, exit 1 naming the first entry
/// that was edited, removed or moved.
async fn audit_verify(settings: Settings) -> anyhow::Result<()> {
    let state = state(settings).await?;
    match state.admin.audit_log().verify().await? {
        phaze_audit::Verdict::Intact { entries } => {
            println!("audit log intact: {entries} entries");
            Ok(())
        }
        phaze_audit::Verdict::Broken { seq, why } => {
            anyhow::bail!("audit log broken at entry {seq}: {why}")
        }
    }
}

/// Seals every stored address, name, TOTP secret and device key again under the newest
/// session key, so that older keys can be dropped once sessions sealed under them have expired.
/// Safe beside serving processes.
async fn keys_rotate(settings: Settings) -> anyhow::Result<()> {
    let state = state(settings).await?;
    let done = state.reseal_stored().await?;
    println!(
        "accounts: {} looked at, {} sealed again under the newest key",
        done.accounts.visited, done.accounts.resealed
    );
    if let Some(devices) = done.devices {
        println!(
            "devices: {} looked at, {} sealed again under the newest key",
            devices.visited, devices.resealed
        );
    }
    if done.unopened() > 0 {
        anyhow::bail!(
            "{} records hold data no configured key opens (their ids are in the log): keep \
             every key they may need and run it again",
            done.unopened()
        );
    }
    if done.accounts.busy > 0 {
        anyhow::bail!(
            "{} accounts kept changing while being sealed again: run it again",
            done.accounts.busy
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn help_is_a_command_not_an_error() {
        for flag in ["--help", "-h"] {
            let (_, command) = parse_args(&args(&[flag])).expect("help parses");
            assert_eq!(command, Command::Help, "{flag}");
            let (_, command) = parse_args(&args(&["serve", flag])).expect("help parses");
            assert_eq!(command, Command::Help, "serve {flag}");
        }
    }

    #[test]
    fn unknown_arguments_are_errors_with_the_usage() {
        for list in [&["--verbose"][..], &["serve", "now"], &["admin", "grant"]] {
            assert_eq!(
                parse_args(&args(list)).err().as_deref(),
                Some(USAGE),
                "{list:?}"
            );
        }
        assert!(parse_args(&args(&["--config"])).is_err());
    }

    #[test]
    fn known_commands_parse() {
        let (config, command) = parse_args(&args(&["-c", "x.toml", "migrate"])).expect("parses");
        assert_eq!(config, Some(PathBuf::from("x.toml")));
        assert_eq!(command, Command::Migrate);
        let (_, command) = parse_args(&args(&["admin", "revoke", "a@b.example"])).expect("parses");
        assert_eq!(
            command,
            Command::Admin {
                grant: false,
                email: "a@b.example".to_owned()
            }
        );
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(use_colour(true, None));
        assert!(use_colour(true, empty), "an empty NO_COLOR does not count");
        assert!(!use_colour(true, set));
        assert!(
            !use_colour(false, None),
            "a file or a pipe gets no escape codes"
        );
        assert!(!use_colour(false, empty));
        assert!(!use_colour(false, set));
    }
}
