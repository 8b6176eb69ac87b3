//! What only the filesystem rate-limit store has to prove: a damaged file fails closed, idle
//! files are purged, and keys never become anything but 64-hex file names.

use phaze_ratelimit::{LimitKey, RateLimitStore, Step, StoreError, Window};
use phaze_store_fs::FsRateLimits;
use phaze_testkit::ratelimit::key;
use phaze_testkit::t0;
use std::fs;
use std::path::{Path, PathBuf};
use time::Duration;

use crate::support::{files, is_hex, walk};

const FIVE_PER_15_MIN: Window = Window::new(5, Duration::minutes(15));

fn file_of(data: &Path, k: &LimitKey) -> PathBuf {
    data.join("ratelimits").join(k.to_hex())
}

/// `result` is the `Backend` error of a decision on a corrupt file, saying that it was emptied
/// (the portal logs that chain with the 503).
fn assert_failed_and_replaced<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::Backend(e)) => {
            let e = e.to_string();
            assert!(e.contains("corrupt rate limit file"), "{what}: {e}");
            assert!(e.contains("emptied"), "{what}: {e}");
        }
        other => panic!("{what}: want a Backend error, got {other:?}"),
    }
}

pub(crate) async fn a_corrupt_or_truncated_file_fails_one_decision_closed_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsRateLimits::open(dir.path()).unwrap();
    let k = key(1);
    for _ in 0..5 {
        assert!(store.hit(&k, FIVE_PER_15_MIN, t0()).await.unwrap().allowed);
    }
    let path = file_of(dir.path(), &k);
    let whole = fs::read(&path).unwrap();

    // Cut short anywhere (a torn write), one flipped bit in an instant, not ours at all.
    let mut damaged: Vec<(String, Vec<u8>)> = [1, 8, 19, 20, whole.len() / 2, whole.len() - 1]
        .into_iter()
        .map(|len| (format!("{len}-byte"), whole[..len].to_vec()))
        .collect();
    let mut flipped = whole.clone();
    flipped[24] ^= 0x10;
    damaged.push(("bit-flipped".into(), flipped.clone()));
    damaged.push(("foreign".into(), b"{\"log\": []}".to_vec()));

    for (what, bytes) in &damaged {
        // The decision that finds it fails closed (never an empty log, which would forgive five
        // failures in that same decision), and empties it: the next one starts afresh instead
        // of refusing the key until someone deletes the file.
        fs::write(&path, bytes).unwrap();
        assert_failed_and_replaced(store.hit(&k, FIVE_PER_15_MIN, t0()).await, what);
        let d = store.hit(&k, FIVE_PER_15_MIN, t0()).await.unwrap();
        assert!(d.allowed, "{what}");
        assert_eq!(d.remaining, 4, "{what}");

        fs::write(&path, bytes).unwrap();
        assert_failed_and_replaced(store.peek(&k, FIVE_PER_15_MIN, t0()).await, what);
        let d = store.peek(&k, FIVE_PER_15_MIN, t0()).await.unwrap();
        assert_eq!(d.remaining, 5, "peek after a {what} file");

        // A run that hits it or only peeks it fails the same way, as a whole: its other key
        // records nothing. The next run starts afresh.
        let other = key(3);
        for op in [Step::hit, Step::peek] {
            let steps = [Step::hit(other, FIVE_PER_15_MIN), op(k, FIVE_PER_15_MIN)];
            fs::write(&path, bytes).unwrap();
            assert_failed_and_replaced(store.run(&steps, t0()).await, what);
            let d = store.peek(&other, FIVE_PER_15_MIN, t0()).await.unwrap();
            assert_eq!(d.remaining, 5, "the failed run's other key, {what}");
            let d = store.run(&steps, t0()).await.unwrap();
            assert!(d.len() == 2 && d.iter().all(|d| d.allowed), "{what}: {d:?}");
            store.reset(&other).await.unwrap();
        }
    }

    // A run that only peeks an absent key leaves no file behind.
    store
        .run(&[Step::peek(key(4), FIVE_PER_15_MIN)], t0())
        .await
        .unwrap();
    assert!(!file_of(dir.path(), &key(4)).exists());

    // A purge deletes a corrupt file, even while an intact one would still be counted.
    fs::write(&path, &flipped).unwrap();
    fs::write(file_of(dir.path(), &key(2)), &whole).unwrap();
    assert_eq!(store.purge_idle(t0()).await.unwrap(), 1);
    assert!(!path.exists());
    assert!(store.hit(&k, FIVE_PER_15_MIN, t0()).await.unwrap().allowed);

    // The intact record, restored, is read as the five hits it holds.
    fs::write(&path, &whole).unwrap();
    assert!(!store.hit(&k, FIVE_PER_15_MIN, t0()).await.unwrap().allowed);
}

pub(crate) async fn purge_deletes_exactly_the_idle_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsRateLimits::open(dir.path()).unwrap();
    let hour = Window::new(5, Duration::hours(1));
    // key 1: hit at t0 with 15 min; key 2: at t0 with 15 min, then at +10 min with one hour;
    // key 3: at +20 min with 15 min; key 4: reset after its hit (no file left).
    store.hit(&key(1), FIVE_PER_15_MIN, t0()).await.unwrap();
    store.hit(&key(2), FIVE_PER_15_MIN, t0()).await.unwrap();
    store
        .hit(&key(2), hour, t0() + Duration::minutes(10))
        .await
        .unwrap();
    store
        .hit(&key(3), FIVE_PER_15_MIN, t0() + Duration::minutes(20))
        .await
        .unwrap();
    store.hit(&key(4), FIVE_PER_15_MIN, t0()).await.unwrap();
    store.reset(&key(4)).await.unwrap();
    let names = |d: &Path| -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(d.join("ratelimits"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    let mut all = vec![key(1).to_hex(), key(2).to_hex(), key(3).to_hex()];
    all.sort();
    assert_eq!(names(dir.path()), all);

    // Just before key 1's expiry nothing goes; at it, key 1 goes.
    let at = |m: i64| t0() + Duration::minutes(m);
    assert_eq!(
        store
            .purge_idle(at(15) - Duration::nanoseconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.purge_idle(at(15)).await.unwrap(), 1);
    // Key 3 (newest +20 min, 15 min window) expires at 35 min; key 2's hour window keeps it to 70.
    assert_eq!(store.purge_idle(at(35)).await.unwrap(), 1);
    assert_eq!(names(dir.path()), vec![key(2).to_hex()]);
    assert_eq!(store.purge_idle(at(69)).await.unwrap(), 0);
    // Still counted: the purge re-checks under the lock and keeps the log whole.
    assert_eq!(
        store.peek(&key(2), hour, at(69)).await.unwrap().remaining,
        4
    );
    assert_eq!(store.purge_idle(at(70)).await.unwrap(), 1);
    assert!(names(dir.path()).is_empty());

    // A purged key starts afresh; an empty leftover file (a crash after create) is purged too.
    assert_eq!(
        store
            .hit(&key(1), FIVE_PER_15_MIN, at(80))
            .await
            .unwrap()
            .remaining,
        4
    );
    fs::write(file_of(dir.path(), &key(9)), b"").unwrap();
    assert_eq!(store.purge_idle(at(81)).await.unwrap(), 1);
    assert_eq!(names(dir.path()), vec![key(1).to_hex()]);
}

pub(crate) async fn keys_that_spell_paths_stay_64_hex_names_inside_the_data_directory() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let store = FsRateLimits::open(&data).unwrap();
    let mut raw: Vec<[u8; 32]> = [
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "..\\..\\x",
        "C:\\Windows\\win.ini",
        "x\0y",
        ".lock",
        "00.lock",
    ]
    .iter()
    .map(|s| {
        let mut k = [0u8; 32];
        k[..s.len()].copy_from_slice(s.as_bytes());
        k
    })
    .collect();
    raw.extend([[b'.'; 32], [b'/'; 32], [0; 32], [0xff; 32]]);
    for bytes in &raw {
        let k = LimitKey::from(*bytes);
        assert!(store.hit(&k, FIVE_PER_15_MIN, t0()).await.unwrap().allowed);
        assert_eq!(
            store
                .peek(&k, FIVE_PER_15_MIN, t0())
                .await
                .unwrap()
                .remaining,
            4
        );
    }
    for path in walk(root.path()) {
        assert!(path.starts_with(&data), "{}", path.display());
    }
    let mut created = files(&data);
    created.retain(|f| f != "owner.lock");
    assert_eq!(created.len(), raw.len());
    for f in &created {
        let name = f.strip_prefix("ratelimits/").unwrap();
        assert!(is_hex(name, 64), "{f}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in &created {
            let mode = fs::metadata(data.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}
