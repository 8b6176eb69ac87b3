//! [`Mailer`] that drops each message as an `.eml` file into a directory for a relay to pick up.

use async_trait::async_trait;
use lettre::message::Mailbox;
use phaze_auth::{Email, HeldMail, MailError, Mailer, OutgoingMail};
use rand::RngCore;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{atomic, blocking, prepare_dir, FsError};

/// [`Mailer`] writing one RFC 5322 message per file, `<dir>/<32 random hex digits>.eml`.
///
/// Messages are built with lettre, which encodes every header value (so a subject cannot add a
/// header) and picks a transfer encoding for the UTF-8 plain-text body. A file appears complete
/// or not at all: it is written under a dot-name ending in `.tmp` and linked to its `.eml` name
/// when done, so a relay polling for `*.eml` never reads half a message.
#[derive(Clone, Debug)]
pub struct FsOutbox {
    dir: Arc<PathBuf>,
    from: Mailbox,
}

impl FsOutbox {
    /// Opens the outbox `dir` itself (created 0700 on Unix if needed), sending as `from`, e.g.
    /// `Phaze <no-reply@example.com>`.
    pub fn open(dir: impl AsRef<Path>, from: &str) -> Result<Self, FsError> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| FsError::InvalidFrom(Box::new(e)))?;
        Ok(Self {
            dir: Arc::new(prepare_dir(dir.as_ref())?),
            from,
        })
    }

    fn build(&self, mail: &OutgoingMail, id: &str) -> Result<Vec<u8>, MailError> {
        Ok(phaze_mail::compose(&self.from, mail, id)?.formatted())
    }
}

#[async_trait]
impl Mailer for FsOutbox {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let mut id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut id);
        let id = hex::encode(id);
        let bytes = self.build(mail, &id)?;
        let dir = self.dir.clone();
        let written = blocking(move || {
            if atomic::create(&dir, &format!("{id}.eml"), &bytes)? {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "outbox message id taken",
                ))
            }
        })
        .await;
        written.map_err(|e| MailError::Transport(Box::new(e)))
    }

    async fn held(&self, to: &Email) -> Result<Vec<HeldMail>, MailError> {
        let (dir, header) = (self.dir.clone(), format!("To: {}", to.as_str()));
        blocking(move || {
            let mut held = Vec::new();
            let mut names = atomic::names(&dir)?;
            names.sort_unstable();
            for name in names.iter().filter(|n| n.ends_with(".eml")) {
                let Some(bytes) = atomic::read(&dir.join(name))? else {
                    continue;
                };
                let text = String::from_utf8_lossy(&bytes);
                let headers: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
                if !headers.iter().any(|l| l.eq_ignore_ascii_case(&header)) {
                    continue;
                }
                let subject = headers
                    .iter()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap_or_default();
                held.push(HeldMail {
                    subject: subject.to_owned(),
                    waiting: true,
                });
            }
            Ok(held)
        })
        .await
        .map_err(|e: io::Error| MailError::Transport(Box::new(e)))
    }

    async fn forget(&self, to: &Email) -> Result<usize, MailError> {
        let (dir, header) = (self.dir.clone(), format!("To: {}", to.as_str()));
        blocking(move || {
            let mut removed = 0;
            for name in atomic::names(&dir)?.iter().filter(|n| n.ends_with(".eml")) {
                let Some(bytes) = atomic::read(&dir.join(name))? else {
                    continue;
                };
                let text = String::from_utf8_lossy(&bytes);
                // The headers end at the first empty line; `To` is one address, as composed.
                let to_them = text
                    .lines()
                    .take_while(|l| !l.is_empty())
                    .any(|l| l.eq_ignore_ascii_case(&header));
                if to_them && atomic::remove(&dir, name)? {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e: io::Error| MailError::Transport(Box::new(e)))
    }
}
