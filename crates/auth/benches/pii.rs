//! What sealing addresses and display names costs per account read: every authenticated request
//! loads its account by id, so `open` is on the hot path. The baseline is the read before
//! sealing: a clone of the stored account.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use phaze_auth::{
    Account, AccountSealer, AccountStore, DisplayName, Email, EmailIndexKey, SealedAccounts, UserId,
};
use phaze_sessions::{Sealer, SealingKey};
use phaze_store_memory::MemoryAccounts;
use secrecy::SecretBox;
use std::sync::Arc;
use time::OffsetDateTime;

fn pii(c: &mut Criterion) {
    let sealer = AccountSealer::new(
        Sealer::new(vec![SealingKey::new(&[1; 32]), SealingKey::new(&[2; 32])]).unwrap(),
        EmailIndexKey::new(SecretBox::new(Box::new([3; 32]))),
    );
    let account = Account {
        id: UserId::generate(),
        email: Email::parse("ada.lovelace@example.com").unwrap(),
        email_verified: true,
        password_hash:
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA"
                .into(),
        display_name: DisplayName::parse("Ada Lovelace").unwrap(),
        is_admin: false,
        locked: false,
        created_at: OffsetDateTime::UNIX_EPOCH,
        password_changed_at: OffsetDateTime::UNIX_EPOCH,
        two_factor: None,
    };
    let record = sealer.seal(&account);
    let mut group = c.benchmark_group("account_read");
    group.bench_function("clear_baseline_clone", |b| {
        b.iter(|| black_box(&account).clone())
    });
    group.bench_function("sealed_clone_and_open", |b| {
        b.iter(|| sealer.open(black_box(&record).clone()).unwrap())
    });
    group.bench_function("email_index", |b| {
        b.iter(|| sealer.index(black_box(&account.email)))
    });
    group.bench_function("seal", |b| b.iter(|| sealer.seal(black_box(&account))));

    // Through a store, as a request does: the raw record (the read before sealing), the account
    // opened afresh, and the account from the memory of opened accounts.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let store = Arc::new(MemoryAccounts::default());
    let accounts = SealedAccounts::new(store.clone(), sealer.clone());
    rt.block_on(accounts.insert(&account)).unwrap();
    let id = account.id;
    group.bench_function("store_by_id_baseline", |b| {
        b.iter(|| rt.block_on(store.by_id(black_box(&id))).unwrap())
    });
    group.bench_function("sealed_by_id_opened_afresh", |b| {
        b.iter(|| {
            let fresh = SealedAccounts::new(store.clone(), sealer.clone());
            rt.block_on(fresh.by_id(black_box(&id))).unwrap()
        })
    });
    group.bench_function("sealed_by_id_remembered", |b| {
        b.iter(|| rt.block_on(accounts.by_id(black_box(&id))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, pii);
criterion_main!(benches);
