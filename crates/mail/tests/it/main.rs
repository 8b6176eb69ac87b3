//! The queue and the courier, on the memory and fs queues, with a relay that fails on demand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use phaze_auth::{Email, OutgoingMail};
use phaze_mail::{Backoff, Courier, MailQueue, QueuedMail, Relay, RelayError};
use phaze_store_fs::FsMailQueue;
use phaze_store_memory::MemoryMailQueue;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

fn mail(n: u32) -> OutgoingMail {
    OutgoingMail {
        to: Email::parse(&format!("user{n}@example.com")).unwrap(),
        subject: format!("Message {n}"),
        body: format!("Body {n}\n"),
    }
}

/// A relay answering from a script (then `Ok`), recording what it accepted.
#[derive(Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<(), RelayError>>>,
    accepted: Mutex<Vec<(String, String)>>,
}

impl Scripted {
    fn failing(answers: Vec<Result<(), RelayError>>) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.into()),
            ..Self::default()
        })
    }
    fn accepted(&self) -> Vec<(String, String)> {
        self.accepted.lock().unwrap().clone()
    }
}

#[async_trait]
impl Relay for Scripted {
    async fn deliver(&self, id: &str, mail: &OutgoingMail) -> Result<(), RelayError> {
        let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()));
        if answer.is_ok() {
            self.accepted
                .lock()
                .unwrap()
                .push((id.to_owned(), mail.subject.clone()));
        }
        answer
    }
}

type Clock = Arc<Mutex<OffsetDateTime>>;

fn courier(queue: Arc<dyn MailQueue>, relay: Arc<Scripted>, clock: &Clock) -> Courier {
    let clock = clock.clone();
    Courier::new(
        queue,
        relay,
        Backoff {
            first: Duration::seconds(30),
            max: Duration::minutes(10),
            max_attempts: 4,
        },
        Arc::new(move || *clock.lock().unwrap()),
    )
}

fn queues() -> Vec<(&'static str, Arc<dyn MailQueue>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let fs = FsMailQueue::open(dir.path()).unwrap();
    vec![
        ("memory", Arc::new(MemoryMailQueue::default()), None),
        ("fs", Arc::new(fs), Some(dir)),
    ]
}

fn temporary() -> Result<(), RelayError> {
    Err(RelayError::Temporary("451 try later".into()))
}

#[tokio::test]
async fn temporary_failures_are_retried_with_backoff_and_delivered_once() {
    for (name, queue, _dir) in queues() {
        let relay = Scripted::failing(vec![temporary(), temporary()]);
        let clock: Clock = Arc::new(Mutex::new(t0()));
        let c = courier(queue.clone(), relay.clone(), &clock);
        let queued = QueuedMail::new(mail(1), t0());
        queue.push(&queued).await.unwrap();

        assert_eq!(c.run_once().await.unwrap(), 1, "{name}: tried, failed");
        assert_eq!(c.run_once().await.unwrap(), 0, "{name}: not due for 30 s");
        *clock.lock().unwrap() += Duration::seconds(29);
        assert_eq!(c.run_once().await.unwrap(), 0, "{name}");
        *clock.lock().unwrap() += Duration::seconds(1);
        assert_eq!(c.run_once().await.unwrap(), 1, "{name}: second failure");
        *clock.lock().unwrap() += Duration::seconds(59);
        assert_eq!(c.run_once().await.unwrap(), 0, "{name}: the wait doubled");
        *clock.lock().unwrap() += Duration::seconds(1);
        assert_eq!(c.run_once().await.unwrap(), 1, "{name}: delivered");
        assert_eq!(
            relay.accepted(),
            vec![(queued.id.clone(), "Message 1".into())],
            "{name}"
        );
        *clock.lock().unwrap() += Duration::hours(2);
        assert_eq!(
            c.run_once().await.unwrap(),
            0,
            "{name}: gone from the queue"
        );
        assert!(c.dead_letters().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_permanent_refusal_or_the_last_failure_makes_a_dead_letter() {
    for (name, queue, _dir) in queues() {
        let relay = Scripted::failing(vec![
            Err(RelayError::Permanent("550 no such mailbox".into())),
            temporary(),
            temporary(),
            temporary(),
            temporary(),
        ]);
        let clock: Clock = Arc::new(Mutex::new(t0()));
        let c = courier(queue.clone(), relay.clone(), &clock);
        let refused = QueuedMail::new(mail(1), t0());
        queue.push(&refused).await.unwrap();
        c.run_once().await.unwrap();
        let dead = c.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 1, "{name}: dead at once");
        assert_eq!(dead[0].attempts, 1);
        assert!(dead[0].last_error.as_deref().unwrap().contains("550"));

        let flaky = QueuedMail::new(mail(2), *clock.lock().unwrap());
        queue.push(&flaky).await.unwrap();
        for _ in 0..4 {
            c.run_once().await.unwrap();
            *clock.lock().unwrap() += Duration::hours(1);
        }
        let dead = c.dead_letters().await.unwrap();
        assert_eq!(dead.len(), 2, "{name}: dead after max_attempts");
        assert!(dead.iter().any(|d| d.id == flaky.id && d.attempts == 4));
        assert!(relay.accepted().is_empty());
        assert_eq!(c.run_once().await.unwrap(), 0, "{name}: never tried again");
    }
}

#[tokio::test]
async fn a_claimed_message_is_nobody_elses_until_settled() {
    for (name, queue, _dir) in queues() {
        for n in 0..5 {
            queue.push(&QueuedMail::new(mail(n), t0())).await.unwrap();
        }
        let later = QueuedMail {
            due: t0() + Duration::minutes(5),
            ..QueuedMail::new(mail(9), t0())
        };
        queue.push(&later).await.unwrap();
        // Sixteen claimers at once: each due message goes to exactly one.
        let claims = futures_util::future::join_all((0..16).map(|_| queue.claim(t0()))).await;
        let mut ids: Vec<String> = claims
            .into_iter()
            .filter_map(|c| c.unwrap().map(|m| m.id))
            .collect();
        assert_eq!(ids.len(), 5, "{name}");
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 5, "{name}: no message twice");
        assert!(
            queue.claim(t0()).await.unwrap().is_none(),
            "{name}: all held, the rest not due"
        );
        // Settling needs holding.
        assert!(queue.delivered(&later.id).await.is_err(), "{name}");
        for id in &ids {
            queue.delivered(id).await.unwrap();
        }
        let next = queue.claim(t0() + Duration::minutes(5)).await.unwrap();
        assert_eq!(next.map(|m| m.id), Some(later.id.clone()), "{name}");
    }
}

#[tokio::test]
async fn the_fs_queue_survives_a_restart_and_a_lost_claim() {
    let dir = tempfile::tempdir().unwrap();
    let queued = QueuedMail::new(mail(1), t0());
    {
        let queue = FsMailQueue::open(dir.path()).unwrap();
        queue.push(&queued).await.unwrap();
        // Claimed, then the process "dies" holding it.
        assert!(queue.claim(t0()).await.unwrap().is_some());
        let other = FsMailQueue::open(dir.path()).unwrap();
        assert!(
            other.claim(t0()).await.unwrap().is_none(),
            "held by the first"
        );
    }
    let reopened = FsMailQueue::open(dir.path()).unwrap();
    let again = reopened.claim(t0()).await.unwrap();
    assert_eq!(
        again,
        Some(queued),
        "the lock died with its holder; the message did not"
    );
}

/// Forgetting an address deletes its waiting messages and dead letters, not one being
/// delivered, and nobody else's.
#[tokio::test]
async fn forgetting_an_address_deletes_its_messages_but_not_one_being_delivered() {
    for (name, queue, _dir) in queues() {
        let her = "user1@example.com";
        for _ in 0..2 {
            queue.push(&QueuedMail::new(mail(1), t0())).await.unwrap();
        }
        // One of hers is being delivered.
        let held = queue.claim(t0()).await.unwrap().unwrap();
        assert_eq!(held.mail.to.as_str(), her);
        let other = QueuedMail::new(mail(2), t0());
        queue.push(&other).await.unwrap();
        assert_eq!(
            queue.forget(her).await.unwrap(),
            1,
            "{name}: the waiting one"
        );
        assert_eq!(
            queue.depth().await.unwrap(),
            2,
            "{name}: the held one and the other's"
        );
        // It fails for good; the dead letter goes at the next forget.
        queue.dead(&held).await.unwrap();
        assert_eq!(
            queue.forget(her).await.unwrap(),
            1,
            "{name}: the dead letter"
        );
        assert!(queue.dead_letters().await.unwrap().is_empty(), "{name}");
        let next = queue.claim(t0()).await.unwrap().unwrap();
        assert_eq!(next.id, other.id, "{name}: the other address's stays");
    }
}

/// What the export lists: the messages to one address the queue still holds, waiting (one being
/// delivered included) or dead, with their subjects; nobody else's, and nothing delivered.
#[tokio::test]
async fn held_mail_is_the_waiting_and_dead_messages_to_the_address_only() {
    use phaze_auth::{HeldMail, Mailer};
    for (name, queue, _dir) in queues() {
        let mailer = phaze_mail::QueuedMailer::new(
            queue.clone(),
            Arc::new(t0),
            Arc::new(tokio::sync::Notify::new()),
        );
        let her = Email::parse("user1@example.com").unwrap();
        for n in [1, 2, 1, 1] {
            mailer.send(&mail(n)).await.unwrap();
        }
        // One of hers is delivered, one fails for good, one waits (another address's message
        // that comes out first stays held: it is not hers either way).
        let mut hers = Vec::new();
        while hers.len() < 2 {
            let next = queue.claim(t0()).await.unwrap().unwrap();
            if next.mail.to == her {
                hers.push(next);
            }
        }
        let (delivered, dead) = (hers.remove(0), hers.remove(0));
        queue.delivered(&delivered.id).await.unwrap();
        queue.dead(&dead).await.unwrap();
        let mut held = mailer.held(&her).await.unwrap();
        held.sort_by_key(|h| h.waiting);
        let subject = "Message 1".to_owned();
        assert_eq!(
            held,
            [
                HeldMail {
                    subject: subject.clone(),
                    waiting: false
                },
                HeldMail {
                    subject,
                    waiting: true
                },
            ],
            "{name}"
        );
        let nobody = Email::parse("user9@example.com").unwrap();
        assert!(mailer.held(&nobody).await.unwrap().is_empty(), "{name}");
    }
}
