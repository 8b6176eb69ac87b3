//! argon2id at the configured cost: the bound on login throughput.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use phaze_auth::{Argon2id, HashParams};

fn argon2(c: &mut Criterion) {
    let mut group = c.benchmark_group("argon2id_owasp");
    group.sample_size(20);
    let hasher = Argon2id::new(HashParams::default()).unwrap();
    let phc = hasher.hash_sync("correct horse battery staple").unwrap();
    group.bench_function("hash", |b| {
        b.iter(|| hasher.hash_sync("correct horse battery staple").unwrap())
    });
    group.bench_function("verify", |b| {
        b.iter(|| hasher.verify_sync("correct horse battery staple", Some(&phc)))
    });
    let reference = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(19_456, 2, 1, None).unwrap(),
    );
    let parsed = argon2::PasswordHash::new(&phc).unwrap();
    group.bench_function("verify_reference_fresh_allocation", |b| {
        use argon2::PasswordVerifier as _;
        b.iter(|| {
            reference
                .verify_password(b"correct horse battery staple", &parsed)
                .is_ok()
        })
    });
    group.finish();
}

criterion_group!(benches, argon2);
criterion_main!(benches);
