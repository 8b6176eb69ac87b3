//! Session create, load and rotate through `SessionManager`, on the memory store and on the
//! filesystem store (shared and owned data directory) side by side (one group per operation).
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a failed unwrap is a failed run

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use phaze_sessions::{ClientMeta, Sealer, SealingKey, SessionManager, SessionPolicy, SessionStore};
use phaze_store_fs::{DataDir, FsSessions, Sharing};
use phaze_store_memory::MemorySessions;
use std::hint::black_box;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use tokio::runtime::Runtime;

/// A fixed instant: benchmarks, like the crates, never read the clock.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

fn manager(store: Arc<dyn SessionStore>) -> SessionManager {
    let sealer = Sealer::new(vec![SealingKey::new(&[7u8; 32])]).unwrap();
    SessionManager::new(store, sealer, SessionPolicy::default())
}

/// The adapters: memory, and the filesystem store in two temporary directories that live as long
/// as the run, one shared (each read checks its file) and one owned by this process alone.
fn adapters() -> (Vec<(&'static str, SessionManager)>, [tempfile::TempDir; 2]) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let shared = FsSessions::open(dirs[0].path()).unwrap();
    let owned = DataDir::open(dirs[1].path(), Sharing::Exclusive)
        .unwrap()
        .sessions()
        .unwrap();
    let managers = vec![
        ("memory", manager(Arc::new(MemorySessions::default()))),
        ("fs-shared", manager(Arc::new(shared))),
        ("fs-owned", manager(Arc::new(owned))),
    ];
    (managers, dirs)
}

fn meta() -> ClientMeta {
    ClientMeta {
        ip: "192.0.2.1".parse().ok(),
        user_agent: "bench/1.0".into(),
    }
}

fn sessions(c: &mut Criterion) {
    let rt: Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (managers, _dirs) = adapters();
    let meta = meta();
    let user = phaze_sessions::UserId::generate();

    let mut group = c.benchmark_group("create");
    for (name, m) in &managers {
        group.bench_function(*name, |b| {
            b.iter(|| rt.block_on(m.create(&user, &meta, t0())).unwrap());
        });
    }
    group.finish();

    let mut group = c.benchmark_group("load");
    for (name, m) in &managers {
        let (id, _) = rt.block_on(m.create(&user, &meta, t0())).unwrap();
        // Ten seconds later: neither the touch (60 s) nor the rotation (15 min) is due.
        let now = t0() + Duration::seconds(10);
        group.bench_function(*name, |b| {
            b.iter(|| {
                let loaded = rt
                    .block_on(m.load(black_box(&id), &meta, now))
                    .unwrap()
                    .unwrap();
                assert!(loaded.rotated_to.is_none());
                loaded
            });
        });
    }
    group.finish();

    let mut group = c.benchmark_group("rotate");
    for (name, m) in &managers {
        let now = t0() + m.policy().rotate_after + Duration::seconds(1);
        group.bench_function(*name, |b| {
            b.iter_batched(
                || rt.block_on(m.create(&user, &meta, t0())).unwrap().0,
                |id| {
                    let loaded = rt.block_on(m.load(&id, &meta, now)).unwrap().unwrap();
                    assert!(loaded.rotated_to.is_some());
                    loaded
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

criterion_group!(benches, sessions);
criterion_main!(benches);
