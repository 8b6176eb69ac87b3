//! Secret settings read from files: every secret key `K` may be given as `K_file`, a path whose
//! content is the value, as systemd credentials (`$CREDENTIALS_DIRECTORY`), a Vault agent's
//! templates and Kubernetes secret volumes deliver them. The file must be a regular file that
//! only its owner (and group) can read and nobody else can write; setting both `K` and `K_file`
//! is an error. Errors name the key and the path, never the content.

use config::{Map, Value, ValueKind};
use std::path::Path;

use super::ConfigError;

/// How a file's content becomes the value.
#[derive(Clone, Copy)]
enum Shape {
    /// One value: the content without its final line break.
    One,
    /// A list: one value per non-empty line (key lists, rolled webhook secrets).
    Lines,
}

/// Every secret setting, and how its file reads.
const SECRETS: [(&str, Shape); 9] = [
    ("secrets.session_keys", Shape::Lines),
    ("secrets.csrf_key", Shape::One),
    ("secrets.token_pepper", Shape::One),
    ("store.postgres.url", Shape::One),
    ("store.redis.url", Shape::One),
    ("mail.smtp.password", Shape::One),
    ("payments.stripe_secret_key", Shape::One),
    ("payments.webhook_secrets", Shape::Lines),
    ("metrics.bearer_token", Shape::One),
];

/// Replaces each `K_file` in `root` by `K` with the file's content.
pub(super) fn resolve(root: &mut Map<String, Value>) -> Result<(), ConfigError> {
    for (key, shape) in SECRETS {
        let mut parts: Vec<&str> = key.split('.').collect();
        let Some(last) = parts.pop() else { continue };
        let Some(table) = table_at(root, &parts) else {
            continue;
        };
        let file_key = format!("{last}_file");
        let Some(path) = table.remove(&file_key) else {
            continue;
        };
        let path = match path.kind {
            ValueKind::String(p) if !p.trim().is_empty() => p,
            ValueKind::String(_) | ValueKind::Nil => continue,
            _ => return Err(fail(key, "must be a file path")),
        };
        if table.contains_key(last) {
            return Err(fail(
                key,
                "is set twice: give the value or the _file, not both",
            ));
        }
        let content = read(Path::new(&path)).map_err(|why| fail(key, &format!("{path}: {why}")))?;
        let value = match shape {
            Shape::One => {
                let one = content.strip_suffix('\n').unwrap_or(&content);
                let one = one.strip_suffix('\r').unwrap_or(one);
                if one.is_empty() || one.contains('\n') {
                    return Err(fail(key, &format!("{path}: must hold one line")));
                }
                ValueKind::String(one.to_owned())
            }
            Shape::Lines => ValueKind::Array(
                content
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::new(None, ValueKind::String(l.to_owned())))
                    .collect(),
            ),
        };
        table.insert(last.to_owned(), Value::new(None, value));
    }
    Ok(())
}

fn fail(key: &str, why: &str) -> ConfigError {
    ConfigError(format!("{key}_file: {why}"))
}

/// The table at `path` under `root`, if every part of it exists.
fn table_at<'a>(
    root: &'a mut Map<String, Value>,
    path: &[&str],
) -> Option<&'a mut Map<String, Value>> {
    let mut table = root;
    for part in path {
        match table.get_mut(*part).map(|v| &mut v.kind) {
            Some(ValueKind::Table(inner)) => table = inner,
            _ => return None,
        }
    }
    Some(table)
}

/// The file's content, after checking it is a regular file nobody else can read or write.
fn read(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.kind().to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(format!(
                "writable by others (mode {:o}); chmod 0400",
                mode & 0o777
            ));
        }
        if mode & 0o004 != 0 {
            return Err(format!(
                "readable by everyone (mode {:o}); chmod 0400 (Kubernetes: defaultMode 0400; Vault agent: perms 0400)",
                mode & 0o777
            ));
        }
    }
    let bytes = std::fs::read(path).map_err(|e| e.kind().to_string())?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}
