//! Helpers shared by the test modules.

use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// Lower-case hex of SHA-256, as the store names files.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every path under `dir` (not `dir` itself), depth first, without following symlinks.
pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Every file (not directory) under `dir`, as paths relative to `dir` with `/` separators.
pub(crate) fn files(dir: &Path) -> Vec<String> {
    walk(dir)
        .into_iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().is_file())
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap();
            rel.components()
                .map(|c| c.as_os_str().to_str().unwrap().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

/// Whether `s` is `len` lower-case hex digits.
pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
