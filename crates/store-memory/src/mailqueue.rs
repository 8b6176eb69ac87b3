//! [`MailQueue`] in memory, for tests and embedding (nothing survives the process).

use async_trait::async_trait;
use phaze_mail::{MailQueue, QueueError, QueuedMail};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use time::OffsetDateTime;

use crate::lock;

#[derive(Default)]
struct Tables {
    waiting: BTreeMap<String, QueuedMail>,
    held: HashSet<String>,
    dead: Vec<QueuedMail>,
}

/// [`MailQueue`] in memory.
#[derive(Default)]
pub struct MemoryMailQueue(Mutex<Tables>);

fn not_held() -> QueueError {
    QueueError("message not held".into())
}

#[async_trait]
impl MailQueue for MemoryMailQueue {
    async fn depth(&self) -> Result<usize, QueueError> {
        Ok(lock(&self.0).waiting.len())
    }

    async fn waiting_for(&self, to: &str) -> Result<Vec<QueuedMail>, QueueError> {
        Ok(lock(&self.0)
            .waiting
            .values()
            .filter(|m| m.mail.to.as_str() == to)
            .cloned()
            .collect())
    }

    async fn push(&self, mail: &QueuedMail) -> Result<(), QueueError> {
        let mut t = lock(&self.0);
        if t.waiting.contains_key(&mail.id) {
            return Err(QueueError("message id taken".into()));
        }
        t.waiting.insert(mail.id.clone(), mail.clone());
        Ok(())
    }

    async fn claim(&self, now: OffsetDateTime) -> Result<Option<QueuedMail>, QueueError> {
        let mut t = lock(&self.0);
        let found = t
            .waiting
            .values()
            .find(|m| m.due <= now && !t.held.contains(&m.id))
            .cloned();
        if let Some(m) = &found {
            t.held.insert(m.id.clone());
        }
        Ok(found)
    }

    async fn delivered(&self, id: &str) -> Result<(), QueueError> {
        let mut t = lock(&self.0);
        if !t.held.remove(id) {
            return Err(not_held());
        }
        t.waiting.remove(id);
        Ok(())
    }

    async fn retry(&self, mail: &QueuedMail) -> Result<(), QueueError> {
        let mut t = lock(&self.0);
        if !t.held.remove(&mail.id) {
            return Err(not_held());
        }
        t.waiting.insert(mail.id.clone(), mail.clone());
        Ok(())
    }

    async fn dead(&self, mail: &QueuedMail) -> Result<(), QueueError> {
        let mut t = lock(&self.0);
        if !t.held.remove(&mail.id) {
            return Err(not_held());
        }
        t.waiting.remove(&mail.id);
        t.dead.push(mail.clone());
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<QueuedMail>, QueueError> {
        Ok(lock(&self.0).dead.clone())
    }

    async fn forget(&self, to: &str) -> Result<usize, QueueError> {
        let mut t = lock(&self.0);
        let t = &mut *t;
        let before = t.waiting.len() + t.dead.len();
        let held = &t.held;
        t.waiting
            .retain(|id, m| m.mail.to.as_str() != to || held.contains(id));
        t.dead.retain(|m| m.mail.to.as_str() != to);
        Ok(before - t.waiting.len() - t.dead.len())
    }
}
