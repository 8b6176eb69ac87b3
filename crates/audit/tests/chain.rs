//! The chain over the memory store: what verification finds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use phaze_audit::*;
use phaze_ids::UserId;
use phaze_store_memory::MemoryAudit;
use std::sync::Arc;
use time::Duration;
use time::OffsetDateTime;

fn t0() -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::days(20_000)
}

async fn filled(n: u64) -> (Arc<MemoryAudit>, AuditLog) {
    let store = Arc::new(MemoryAudit::default());
    let log = AuditLog::new(store.clone(), [9; 32]);
    let admin = UserId::generate();
    for i in 0..n {
        log.record(
            Draft::new(
                t0() + Duration::seconds(i as i64),
                Some(admin),
                "admin.lock",
            )
            .subject(UserId::generate())
            .client("203.0.113.9")
            .detail(format!("entry {i}")),
        )
        .await
        .unwrap();
    }
    (store, log)
}

#[tokio::test]
async fn entries_chain_from_genesis_and_verify() {
    let (store, log) = filled(3).await;
    assert_eq!(log.verify().await.unwrap(), Verdict::Intact { entries: 3 });
    let mut all = Vec::new();
    store.tamper(|e| all = e.clone());
    assert_eq!(all[0].prev, GENESIS);
    assert_eq!(all[1].prev, all[0].mac);
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let empty = AuditLog::new(Arc::new(MemoryAudit::default()), [9; 32]);
    assert_eq!(
        empty.verify().await.unwrap(),
        Verdict::Intact { entries: 0 }
    );
}

fn broken_at(v: Verdict) -> u64 {
    broken(v).0
}

fn broken(v: Verdict) -> (u64, String) {
    match v {
        Verdict::Broken { seq, why } => (seq, why),
        Verdict::Intact { .. } => panic!("tampering not found"),
    }
}

#[tokio::test]
async fn an_edited_field_is_found_at_its_entry() {
    type Edit = fn(&mut AuditEntry);
    let edits: [(&str, Edit); 7] = [
        ("action", |e| e.action = "admin.unlock".into()),
        ("detail", |e| e.detail.push('!')),
        ("actor", |e| e.actor = None),
        ("subject", |e| e.subject = Some(UserId::generate())),
        ("client", |e| e.client = Some("198.51.100.1".into())),
        ("at", |e| e.at += Duration::seconds(1)),
        ("mac", |e| e.mac = GENESIS.into()),
    ];
    for (what, edit) in edits {
        let (store, log) = filled(5).await;
        store.tamper(|e| edit(&mut e[2]));
        let (seq, why) = broken(log.verify().await.unwrap());
        assert_eq!(seq, 3, "{what}");
        assert!(
            why.contains("changed after it was written"),
            "{what}: {why}"
        );
    }
}

#[tokio::test]
async fn a_rewritten_chain_without_the_key_is_found() {
    // Someone with write access recomputes the edited entry's MAC under a key of their own.
    let (store, log) = filled(4).await;
    let mut original = Vec::new();
    store.tamper(|e| original = e.clone());
    let forged_store = Arc::new(MemoryAudit::default());
    forged_store.tamper(|e| e.push(original[0].clone()));
    let forger = AuditLog::new(forged_store, [1; 32]);
    let forged = forger
        .record(
            Draft::new(original[1].at, original[1].actor, "admin.lock").detail("nothing to see"),
        )
        .await
        .unwrap();
    assert_eq!((forged.seq, &forged.prev), (2, &original[0].mac));
    store.tamper(|e| e[1] = forged);
    assert_eq!(broken_at(log.verify().await.unwrap()), 2);
}

#[tokio::test]
async fn a_removed_entry_is_found_where_it_was() {
    let (store, log) = filled(5).await;
    store.tamper(|e| {
        e.remove(1);
    });
    let (seq, why) = broken(log.verify().await.unwrap());
    assert_eq!(seq, 2);
    assert!(why.contains("missing or out of place"), "{why}");
    // The first one too.
    let (store, log) = filled(3).await;
    store.tamper(|e| {
        e.remove(0);
    });
    assert_eq!(broken_at(log.verify().await.unwrap()), 1);
}

#[tokio::test]
async fn reordered_entries_are_found() {
    let (store, log) = filled(5).await;
    store.tamper(|e| e.swap(1, 3));
    let (seq, why) = broken(log.verify().await.unwrap());
    assert_eq!(seq, 2);
    assert!(why.contains("missing or out of place"), "{why}");
    // Renumbered to look in order: the chain of MACs still breaks.
    let (store, log) = filled(5).await;
    store.tamper(|e| {
        e.swap(1, 3);
        e[1].seq = 2;
        e[3].seq = 4;
    });
    let (seq, why) = broken(log.verify().await.unwrap());
    assert_eq!(seq, 2);
    assert!(why.contains("does not follow entry 1"), "{why}");
}

#[tokio::test]
async fn long_chains_verify_across_batches() {
    let (store, log) = filled(1201).await;
    assert_eq!(
        log.verify().await.unwrap(),
        Verdict::Intact { entries: 1201 }
    );
    store.tamper(|e| e[1100].detail.clear());
    assert_eq!(broken_at(log.verify().await.unwrap()), 1101);
}

#[tokio::test]
async fn drafts_out_of_shape_are_refused_and_nothing_is_stored() {
    let (store, log) = filled(1).await;
    let now = t0();
    for (draft, field) in [
        (Draft::new(now, None, ""), "action"),
        (Draft::new(now, None, "Admin.Lock"), "action"),
        (Draft::new(now, None, "admin lock"), "action"),
        (Draft::new(now, None, &"a".repeat(65)), "action"),
        (
            Draft::new(now, None, "x").detail("line\nforged line"),
            "detail",
        ),
        (
            Draft::new(now, None, "x").detail("é".repeat(MAX_DETAIL + 1)),
            "detail",
        ),
        (Draft::new(now, None, "x").client("1.2.3.4\r\n"), "client"),
    ] {
        match log.record(draft).await {
            Err(AuditError::Invalid(f)) => assert_eq!(f, field),
            other => panic!("{other:?}"),
        }
    }
    let mut n = 0;
    store.tamper(|e| n = e.len());
    assert_eq!(n, 1);
}

#[tokio::test]
async fn pages_are_newest_first_and_filter_by_user_and_action() {
    let store = Arc::new(MemoryAudit::default());
    let log = AuditLog::new(store, [9; 32]);
    let (admin, alice, bob) = (UserId::generate(), UserId::generate(), UserId::generate());
    for (action, subject) in [
        ("admin.lock", alice),
        ("admin.unlock", alice),
        ("admin.lock", bob),
    ] {
        log.record(Draft::new(t0(), Some(admin), action).subject(subject))
            .await
            .unwrap();
    }
    let all = log.page(&AuditFilter::default(), None, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 2, 1]);
    let older = log.page(&AuditFilter::default(), Some(3), 1).await.unwrap();
    assert_eq!(older[0].seq, 2);
    let alices = AuditFilter {
        user: Some(alice),
        action: None,
    };
    assert_eq!(log.page(&alices, None, 10).await.unwrap().len(), 2);
    let by_admin = AuditFilter {
        user: Some(admin),
        action: Some("admin.lock".into()),
    };
    assert_eq!(
        log.page(&by_admin, None, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        [3, 1]
    );
}

#[tokio::test]
async fn a_purge_is_recorded_and_the_chain_verifies_from_its_anchor() {
    let (store, log) = filled(10).await;
    // Entries 0..9 are at t0 + i seconds: the cutoff keeps the last four.
    let purged = log
        .purge_before(t0() + Duration::seconds(6), t0() + Duration::days(400))
        .await
        .unwrap();
    assert_eq!(purged, 6);
    // Four kept, plus the purge record.
    assert_eq!(log.verify().await.unwrap(), Verdict::Intact { entries: 5 });
    let mut kept = Vec::new();
    store.tamper(|e| kept = e.clone());
    assert_eq!(kept[0].seq, 7);
    assert_eq!(kept.last().unwrap().action, PURGED);
    // Nothing older than the cutoff: nothing purged, nothing recorded.
    assert_eq!(log.purge_before(t0(), t0()).await.unwrap(), 0);
    assert_eq!(log.verify().await.unwrap(), Verdict::Intact { entries: 5 });
    // A second purge moves the anchor; the first purge record may go with it.
    assert_eq!(
        log.purge_before(t0() + Duration::days(401), t0() + Duration::days(401))
            .await
            .unwrap(),
        5
    );
    assert_eq!(log.verify().await.unwrap(), Verdict::Intact { entries: 1 });
}

#[tokio::test]
async fn entries_cut_beyond_a_purge_or_without_one_are_found() {
    // Cut without any purge.
    let (store, log) = filled(5).await;
    store.tamper(|e| {
        e.drain(..2);
    });
    let (seq, why) = broken(log.verify().await.unwrap());
    assert_eq!(seq, 2);
    assert!(why.contains("no purge record"), "{why}");
    // Cut further than the purge said.
    let (store, log) = filled(10).await;
    log.purge_before(t0() + Duration::seconds(3), t0() + Duration::days(1))
        .await
        .unwrap();
    store.tamper(|e| {
        e.remove(0);
    });
    assert_eq!(broken_at(log.verify().await.unwrap()), 4);
    // A purge record rewritten to cover the cut does not verify.
    let (store, log) = filled(10).await;
    log.purge_before(t0() + Duration::seconds(3), t0() + Duration::days(1))
        .await
        .unwrap();
    store.tamper(|e| {
        let gone = e.remove(0);
        let purge = e.last_mut().unwrap();
        purge.detail = format!("through {} {}", gone.seq, gone.mac);
    });
    assert!(matches!(
        log.verify().await.unwrap(),
        Verdict::Broken { .. }
    ));
}
