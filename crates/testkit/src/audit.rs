//! Contract of [`AuditStore`]: appends chain on the stored head, atomically, and entries come
//! back as stored.

use phaze_audit::{AuditEntry, AuditFilter, AuditLog, AuditStore, Draft, Verdict};
use phaze_ids::UserId;
use std::sync::Arc;

use crate::t0;

/// Runs the whole [`AuditStore`] contract against an adapter (see the crate docs).
#[macro_export]
macro_rules! audit_store_contract {
    ($make:expr) => {
        mod audit_store_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                audit,
                $make,
                [
                    entries_come_back_as_stored_in_order,
                    pages_filter_and_go_back_in_time,
                    sixteen_parallel_appends_keep_one_chain,
                    a_purge_keeps_the_chain_verifiable_from_its_anchor,
                ]
            );
        }
    };
}

fn log(store: Arc<dyn AuditStore>) -> AuditLog {
    AuditLog::new(store, [3; 32])
}

/// What was appended comes back field for field (markup, quotes and Unicode in the detail as
/// given), in `seq` order, from any position.
pub async fn entries_come_back_as_stored_in_order(store: Arc<impl AuditStore + 'static>) {
    let log = log(store.clone());
    let (admin, user) = (UserId::generate(), UserId::generate());
    let mut written: Vec<AuditEntry> = Vec::new();
    for (i, detail) in ["<script>\"x\"</script>", "ünïcødé 😀", ""]
        .iter()
        .enumerate()
    {
        let draft = Draft::new(
            t0() + time::Duration::seconds(i as i64),
            Some(admin),
            "admin.lock",
        )
        .subject(user)
        .client("2001:db8::1")
        .detail(*detail);
        written.push(log.record(draft).await.unwrap());
    }
    assert_eq!(store.range(1, 10).await.unwrap(), written);
    assert_eq!(store.range(2, 1).await.unwrap(), written[1..2].to_vec());
    assert!(store.range(4, 10).await.unwrap().is_empty());
    assert_eq!(log.verify().await.unwrap(), Verdict::Intact { entries: 3 });
}

/// Pages are newest first, `before` goes back, and the user and action filters hold.
pub async fn pages_filter_and_go_back_in_time(store: Arc<impl AuditStore + 'static>) {
    let log = log(store.clone());
    let (admin, ada, bob) = (UserId::generate(), UserId::generate(), UserId::generate());
    for (action, subject) in [
        ("admin.lock", ada),
        ("admin.unlock", ada),
        ("admin.lock", bob),
        ("admin.end_sessions", bob),
    ] {
        log.record(Draft::new(t0(), Some(admin), action).subject(subject))
            .await
            .unwrap();
    }
    let seqs = |v: Vec<AuditEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    let all = AuditFilter::default();
    assert_eq!(
        seqs(store.page(&all, None, 10).await.unwrap()),
        [4, 3, 2, 1]
    );
    assert_eq!(seqs(store.page(&all, None, 2).await.unwrap()), [4, 3]);
    assert_eq!(seqs(store.page(&all, Some(3), 10).await.unwrap()), [2, 1]);
    let ada_only = AuditFilter {
        user: Some(ada),
        action: None,
    };
    assert_eq!(seqs(store.page(&ada_only, None, 10).await.unwrap()), [2, 1]);
    let locks = AuditFilter {
        user: None,
        action: Some("admin.lock".into()),
    };
    assert_eq!(seqs(store.page(&locks, None, 10).await.unwrap()), [3, 1]);
    let admins = AuditFilter {
        user: Some(admin),
        action: Some("admin.end_sessions".into()),
    };
    assert_eq!(seqs(store.page(&admins, None, 10).await.unwrap()), [4]);
    let nobody = AuditFilter {
        user: Some(UserId::generate()),
        action: None,
    };
    assert!(store.page(&nobody, None, 10).await.unwrap().is_empty());
}

/// Sixteen appends at once: one chain of sixteen that verifies, each draft once.
pub async fn sixteen_parallel_appends_keep_one_chain(store: Arc<impl AuditStore + 'static>) {
    let log = log(store.clone());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                log.record(Draft::new(t0(), None, "test.append").detail(format!("draft {i}")))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(log.verify().await.unwrap(), Verdict::Intact { entries: 16 });
    let mut details: Vec<String> = store
        .range(1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect();
    details.sort();
    let mut expected: Vec<String> = (0..16).map(|i| format!("draft {i}")).collect();
    expected.sort();
    assert_eq!(details, expected);
}

/// A purge deletes the entries before the cutoff, records itself, and the chain still verifies;
/// appends go on after it.
pub async fn a_purge_keeps_the_chain_verifiable_from_its_anchor(
    store: Arc<impl AuditStore + 'static>,
) {
    let log = log(store.clone());
    for i in 0..6 {
        log.record(Draft::new(
            t0() + time::Duration::seconds(i),
            None,
            "test.append",
        ))
        .await
        .unwrap();
    }
    let later = t0() + time::Duration::days(1);
    assert_eq!(
        log.purge_before(t0() + time::Duration::seconds(4), later)
            .await
            .unwrap(),
        4
    );
    assert_eq!(log.verify().await.unwrap(), Verdict::Intact { entries: 3 });
    assert_eq!(store.range(0, 10).await.unwrap()[0].seq, 5);
    log.record(Draft::new(later, None, "test.append"))
        .await
        .unwrap();
    assert_eq!(log.verify().await.unwrap(), Verdict::Intact { entries: 4 });
    assert_eq!(store.purge_through(4).await.unwrap(), 0, "already gone");
}
