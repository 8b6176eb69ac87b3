//! [`Provisioner`]s for WireGuard servers.
//!
//! - [`WgProvisioner`] runs `wg set <interface> peer <key> allowed-ips <v4>/32,<v6>/128` (and
//!   `… peer <key> remove`) through `phaze_sanitize::CommandRunner`: `wg` by its absolute path from
//!   the allow-list, each argument a validated value ([`Interface`], the key, the addresses), no
//!   shell, an empty environment, a timeout.
//! - [`PeerFileProvisioner`] keeps one file per peer and rewrites the server's whole peer list
//!   (`peers.conf`, `[Peer]` sections) atomically after each change, under an OS lock, for a
//!   sidecar on the VPN server to apply (`wg syncconf`).

use async_trait::async_trait;
use phaze_devices::{ProvisionError, Provisioner, PublicKey, TunnelAddress};
use phaze_sanitize::{Argument, CommandRunner, Flag, SafeDir};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A network interface name as Linux takes it: 1–15 bytes of letters, digits, `_`, `-`, `.`, `=`,
/// `+`, not starting with `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface(OsString);

impl Interface {
    /// `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        let ok = (1..=15).contains(&name.len())
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.=+".contains(&b));
        ok.then(|| Self(OsString::from(name)))
    }
}

impl Argument for Interface {
    fn as_arg(&self) -> &OsStr {
        &self.0
    }
}

/// A public key as `wg` reads it (base64 of 32 bytes: nothing else can be in it).
struct KeyArg(OsString);

impl KeyArg {
    fn new(key: &PublicKey) -> Self {
        Self(OsString::from(key.to_base64()))
    }
}

impl Argument for KeyArg {
    fn as_arg(&self) -> &OsStr {
        &self.0
    }
}

/// A device's addresses as one `allowed-ips` value (typed addresses, formatted here).
struct AllowedIps(OsString);

impl AllowedIps {
    fn new(address: &TunnelAddress) -> Self {
        Self(OsString::from(format!(
            "{}/32,{}/128",
            address.v4, address.v6
        )))
    }
}

impl Argument for AllowedIps {
    fn as_arg(&self) -> &OsStr {
        &self.0
    }
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> ProvisionError {
    ProvisionError(Box::new(e))
}

/// Provisions through `wg set`.
#[derive(Clone, Debug)]
pub struct WgProvisioner {
    runner: Arc<CommandRunner>,
    wg: PathBuf,
    interface: Interface,
}

impl WgProvisioner {
    /// `wg` at `wg` (on `runner`'s allow-list), for `interface`.
    pub fn new(runner: Arc<CommandRunner>, wg: PathBuf, interface: Interface) -> Self {
        Self {
            runner,
            wg,
            interface,
        }
    }

    async fn wg(&self, args: Vec<Box<dyn Argument + Send + Sync>>) -> Result<(), ProvisionError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut all: Vec<&dyn Argument> = vec![&Flag("set"), &this.interface];
            all.extend(args.iter().map(|a| a.as_ref() as &dyn Argument));
            this.runner.run(&this.wg, &all).map(|_| ())
        })
        .await
        .map_err(failed)?
        .map_err(failed)
    }
}

#[async_trait]
impl Provisioner for WgProvisioner {
    async fn add_peer(
        &self,
        key: &PublicKey,
        address: &TunnelAddress,
    ) -> Result<(), ProvisionError> {
        self.wg(vec![
            Box::new(Flag("peer")),
            Box::new(KeyArg::new(key)),
            Box::new(Flag("allowed-ips")),
            Box::new(AllowedIps::new(address)),
        ])
        .await
    }

    async fn remove_peer(&self, key: &PublicKey) -> Result<(), ProvisionError> {
        self.wg(vec![
            Box::new(Flag("peer")),
            Box::new(KeyArg::new(key)),
            Box::new(Flag("remove")),
        ])
        .await
    }
}

/// Provisions by writing the server's peer list for a sidecar.
#[derive(Clone, Debug)]
pub struct PeerFileProvisioner {
    dir: Arc<PathBuf>,
}

impl PeerFileProvisioner {
    /// Keeps `dir/peers/` and writes `dir/peers.conf` (the directory is created if needed).
    pub fn open(dir: impl AsRef<Path>) -> io::Result<Self> {
        fs::create_dir_all(dir.as_ref().join("peers"))?;
        Ok(Self {
            dir: Arc::new(dir.as_ref().to_owned()),
        })
    }

    /// The path of the peer list.
    pub fn peer_list(&self) -> PathBuf {
        self.dir.join("peers.conf")
    }

    fn change(&self, name: String, section: Option<String>) -> io::Result<()> {
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".lock"))?;
        lock_within(&lock, std::time::Duration::from_secs(5))?;
        // Through a capability: names are the keys' hex, and nothing reaches outside the directory.
        let peers = SafeDir::create(&self.dir.join("peers"))?;
        match section {
            Some(text) => peers.replace(&name, text.as_bytes())?,
            None => {
                peers.remove(&name)?;
            }
        }
        let mut names: Vec<String> = peers
            .names()?
            .into_iter()
            .filter(|n| n.ends_with(".peer"))
            .collect();
        names.sort();
        let mut list =
            String::from("# Written by phaze-portal; applied by the VPN server's sidecar.\n");
        for n in names {
            if let Some(bytes) = peers.read(&n)? {
                list.push('\n');
                list.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        SafeDir::open(&self.dir)?.replace("peers.conf", list.as_bytes())
    }
}

/// Takes `file`'s exclusive lock, trying with backoff (1 ms doubling to 64 ms) for at most
/// `wait`: a stuck holder makes the change fail (`TimedOut`), never hang.
fn lock_within(file: &File, wait: std::time::Duration) -> io::Result<()> {
    let deadline = std::time::Instant::now() + wait;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::Error(e)) => return Err(e),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() >= deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "peer list locked too long",
                ));
            }
            Err(fs::TryLockError::WouldBlock) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(64));
            }
        }
    }
}

#[async_trait]
impl Provisioner for PeerFileProvisioner {
    async fn add_peer(
        &self,
        key: &PublicKey,
        address: &TunnelAddress,
    ) -> Result<(), ProvisionError> {
        let this = self.clone();
        let name = format!("{}.peer", hex::encode(key.as_bytes()));
        let section = format!(
            "[Peer]\nPublicKey = {key}\nAllowedIPs = {}/32, {}/128\n",
            address.v4, address.v6
        );
        tokio::task::spawn_blocking(move || this.change(name, Some(section)))
            .await
            .map_err(failed)?
            .map_err(failed)
    }

    async fn remove_peer(&self, key: &PublicKey) -> Result<(), ProvisionError> {
        let this = self.clone();
        let name = format!("{}.peer", hex::encode(key.as_bytes()));
        tokio::task::spawn_blocking(move || this.change(name, None))
            .await
            .map_err(failed)?
            .map_err(failed)
    }
}
