//! Several processes on one data directory: the cross-process contract of the ports
//! (`phaze_testkit::processes`), and what only a directory has to prove: a process killed while
//! it holds a lock blocks nobody, and a directory's owner keeps every other process out.

use phaze_ratelimit::{RateLimitStore, Window};
use phaze_sessions::SessionStore;
use phaze_store_fs::{DataDir, FsAccounts, FsError, FsRateLimits, FsSessions, FsTokens, Sharing};
use phaze_testkit::processes::{self, Child, Fresh, Place, Processes, Rule};
use phaze_testkit::ratelimit::key;
use phaze_testkit::sessions::record;
use phaze_testkit::t0;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Runtime;

/// Children that lock the shard file of session [`LOCKED_SESSION`], or the file of rate-limit
/// key [`LOCKED_LIMIT_KEY`], as the store does, and hold it until killed.
const HOLD_SESSION_LOCK: &str = "hold_session_lock";
const HOLD_RATE_LIMIT_LOCK: &str = "hold_rate_limit_lock";
/// Children that own the data directory, exclusively or shared, until killed.
const OWN_EXCLUSIVE: &str = "own_exclusive";
const OWN_SHARED: &str = "own_shared";
/// Children that each claim and deliver mail from one queue until it is empty.
const DRAIN_MAIL: &str = "drain_mail";
/// Children that each claim ten tunnel address slots from one pool.
const CLAIM_SLOTS: &str = "claim_slots";
/// Key byte 0x3c, so shard `3c`.
const LOCKED_SESSION: u8 = 0x3c;
const LOCKED_LIMIT_KEY: u8 = 0x77;

/// The contract on a fresh data directory per race, and this suite's own roles.
pub(crate) fn processes() -> Processes {
    Processes::new(module_path!(), fresh)
        .processes(8)
        .tasks(2)
        .sessions(|data| Arc::new(FsSessions::open(data).unwrap()))
        .accounts(|data| Arc::new(FsAccounts::open(data).unwrap()))
        .tokens(|data| Arc::new(FsTokens::open(data).unwrap()))
        .rate_limits(|data| Arc::new(FsRateLimits::open(data).unwrap()))
        .processed_events(|data| {
            let dir = DataDir::open(data, Sharing::Shared).unwrap();
            Arc::new(dir.processed_events().unwrap())
        })
        .audit(|data| {
            let dir = DataDir::open(data, Sharing::Shared).unwrap();
            Arc::new(dir.audit().unwrap())
        })
        .check(nothing_left_behind)
        .role(HOLD_SESSION_LOCK, |child| {
            let key = record(LOCKED_SESSION, "alice").key.to_hex();
            hold_lock(child, &format!("sessions/locks/{}.lock", &key[..2]))
        })
        .role(HOLD_RATE_LIMIT_LOCK, |child| {
            hold_lock(
                child,
                &format!("ratelimits/{}", key(LOCKED_LIMIT_KEY).to_hex()),
            )
        })
        .role(OWN_EXCLUSIVE, |child| own(child, Sharing::Exclusive))
        .role(OWN_SHARED, |child| own(child, Sharing::Shared))
        .role(DRAIN_MAIL, drain_mail)
        .role(CLAIM_SLOTS, claim_slots)
}

fn fresh() -> Fresh {
    Box::pin(async {
        let dir = tempfile::tempdir().unwrap();
        Place::new(dir.path().join("data").to_str().unwrap(), dir)
    })
}

/// What the files show after a race, beyond what the ports do.
fn nothing_left_behind(rule: Rule, data: &str) {
    let data = Path::new(data);
    let entries = |dir: &str| fs::read_dir(data.join(dir)).unwrap().count();
    match rule {
        Rule::RegisteringOneEmail => {
            // Every loser removed the record it wrote before trying the email.
            assert_eq!(entries("accounts/records"), 1);
            assert_eq!(entries("accounts/emails"), 1);
        }
        Rule::ConsumingOneToken => {
            let files = fs::read_dir(data.join("tokens"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
                .count();
            assert_eq!(files, 0, "no claimed copy is left");
        }
        Rule::AppendingToOneAuditLog => {
            // One file per entry and nothing else: no half-written private file is left.
            let names: Vec<String> = fs::read_dir(data.join("audit/entries"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert!(
                names
                    .iter()
                    .all(|n| n.ends_with(".json") && !n.starts_with('.')),
                "{names:?}"
            );
        }
        _ => {}
    }
}

/// The store's lock protocol, from outside: locks `file` of the data directory until killed.
fn hold_lock(child: &Child, file: &str) -> String {
    let path = Path::new(&child.arg("data")).join(file);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap();
    file.lock().unwrap();
    child.hold();
    "released".to_owned()
}

fn own(child: &Child, sharing: Sharing) -> String {
    let owner = DataDir::open(child.arg("data"), sharing).unwrap();
    child.hold();
    drop(owner);
    "released".to_owned()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `count` children in `role` on `data`, ready.
fn holders(role: &str, count: usize, data: &Path) -> processes::Children {
    let mut children = processes::spawn(role, count, &[("data", data.to_str().unwrap())]);
    children.wait_ready();
    children
}

pub(crate) fn a_killed_lock_holder_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = FsSessions::open(&data).unwrap();
    let s = record(LOCKED_SESSION, "alice");
    let rt = runtime();
    rt.block_on(store.insert(&s)).unwrap();
    let mut holder = holders(HOLD_SESSION_LOCK, 1, &data);
    let mut updated = s.clone();
    updated.sealed = vec![1; 8];
    rt.block_on(async {
        let writer = store.clone();
        let mut update = tokio::spawn(async move { writer.update(&updated).await });
        // The child's lock is the one the store takes: the update waits for it.
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut update).await;
        assert!(
            waited.is_err(),
            "the update must wait while another process holds the shard"
        );
        // SIGKILL on Unix: the process gets no chance to unlock; the kernel releases its lock.
        holder.kill(0);
        let done = tokio::time::timeout(Duration::from_secs(1), update).await;
        assert!(done
            .expect("the update finished within a second of the kill")
            .unwrap()
            .unwrap());
    });
    assert_eq!(
        rt.block_on(store.get(&s.key)).unwrap().unwrap().sealed,
        vec![1; 8]
    );
    assert_eq!(holder.result(0), None, "the child was killed, not finished");
}

pub(crate) fn a_killed_rate_limit_lock_holder_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = FsRateLimits::open(&data).unwrap();
    let window = Window::new(5, time::Duration::minutes(15));
    let mut holder = holders(HOLD_RATE_LIMIT_LOCK, 1, &data);
    let rt = runtime();
    rt.block_on(async {
        let hitter = store.clone();
        let mut hit =
            tokio::spawn(async move { hitter.hit(&key(LOCKED_LIMIT_KEY), window, t0()).await });
        // The child's lock is the one the store takes: the hit waits for it.
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut hit).await;
        assert!(
            waited.is_err(),
            "the hit must wait while another process holds the key's file"
        );
        holder.kill(0);
        let done = tokio::time::timeout(Duration::from_secs(1), hit).await;
        let d = done
            .expect("the hit finished within a second of the kill")
            .unwrap()
            .unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    });
    assert_eq!(holder.result(0), None, "the child was killed, not finished");
}

fn in_use(result: Result<DataDir, FsError>) -> bool {
    matches!(result, Err(FsError::InUse { .. }))
}

pub(crate) fn a_directory_owned_by_one_process_is_refused_to_every_other() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut owner = holders(OWN_EXCLUSIVE, 1, &data);
    assert!(in_use(DataDir::open(&data, Sharing::Exclusive)));
    assert!(in_use(DataDir::open(&data, Sharing::Shared)));
    assert!(
        FsSessions::open(&data).is_err(),
        "a store's own open is shared, and refused too"
    );
    // SIGKILL on Unix: the kernel releases the owner's lock.
    owner.kill(0);
    let owner = DataDir::open(&data, Sharing::Exclusive).unwrap();
    assert_eq!(owner.sharing(), Sharing::Exclusive);
}

pub(crate) fn processes_sharing_a_directory_keep_an_exclusive_owner_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sharers = holders(OWN_SHARED, 2, &data);
    assert!(in_use(DataDir::open(&data, Sharing::Exclusive)));
    let shared = DataDir::open(&data, Sharing::Shared).unwrap();
    drop(shared);
    drop(sharers);
    DataDir::open(&data, Sharing::Exclusive).unwrap();
}

/// Claims and settles messages from the queue in `data` until none is left; returns their ids.
fn drain_mail(child: &Child) -> String {
    use phaze_mail::MailQueue;
    let queue = phaze_store_fs::FsMailQueue::open(child.arg("data")).unwrap();
    let rt = runtime();
    child.wait_for_go();
    let mut ids = Vec::new();
    rt.block_on(async {
        while let Some(m) = queue.claim(t0()).await.unwrap() {
            queue.delivered(&m.id).await.unwrap();
            ids.push(m.id);
        }
    });
    ids.join(",")
}

/// Four processes drain one mail queue of 60 messages at once: every message is delivered by
/// exactly one of them, and the queue is empty after.
pub(crate) fn four_processes_draining_one_mail_queue_deliver_each_message_once() {
    use phaze_mail::{MailQueue, QueuedMail};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mail");
    let queue = phaze_store_fs::FsMailQueue::open(&data).unwrap();
    let rt = runtime();
    let mut pushed: Vec<String> = (0..60)
        .map(|n| {
            let mail = phaze_auth::OutgoingMail {
                to: phaze_auth::Email::parse(&format!("user{n}@example.com")).unwrap(),
                subject: format!("Message {n}"),
                body: "Body\n".into(),
            };
            let queued = QueuedMail::new(mail, t0());
            rt.block_on(queue.push(&queued)).unwrap();
            queued.id
        })
        .collect();
    let mut children = processes::spawn(DRAIN_MAIL, 4, &[("data", data.to_str().unwrap())]);
    children.wait_ready();
    children.go();
    let results = children.finish();
    let mut delivered: Vec<String> = results
        .iter()
        .flat_map(|r| r.split(',').filter(|s| !s.is_empty()).map(str::to_owned))
        .collect();
    delivered.sort();
    pushed.sort();
    assert_eq!(delivered, pushed, "each message once, none lost");
    assert!(rt
        .block_on(queue.claim(t0() + time::Duration::days(1)))
        .unwrap()
        .is_none());
}

/// Claims ten slots of a 30-slot pool in `data`; returns what it got.
fn claim_slots(child: &Child) -> String {
    use phaze_devices::{AddressPool, DeviceId};
    let data = DataDir::open(child.arg("data"), Sharing::Shared).unwrap();
    let pool = data.address_pool().unwrap();
    let rt = runtime();
    child.wait_for_go();
    let got: Vec<String> = rt.block_on(async {
        let mut got = Vec::new();
        for _ in 0..10 {
            if let Some(slot) = pool.claim(&DeviceId::generate(), 30).await.unwrap() {
                got.push(slot.to_string());
            }
        }
        got
    });
    got.join(",")
}

/// Four processes claim ten tunnel addresses each from one pool of 30 at once: 30 distinct
/// slots are handed out, and 10 claims find the pool full.
pub(crate) fn four_processes_claiming_addresses_never_share_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(DataDir::open(&data, Sharing::Shared).unwrap());
    let mut children = processes::spawn(CLAIM_SLOTS, 4, &[("data", data.to_str().unwrap())]);
    children.wait_ready();
    children.go();
    let mut slots: Vec<u32> = children
        .finish()
        .iter()
        .flat_map(|r| {
            r.split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
        })
        .collect();
    assert_eq!(slots.len(), 30, "the pool filled");
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots, (0..30).collect::<Vec<_>>(), "each slot once");
}
