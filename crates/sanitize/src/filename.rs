//! File names from untrusted text, and the `Content-Disposition` header that offers them.

use unicode_normalization::UnicodeNormalization;

/// What a download is called when nothing of its name survives.
const LAST_RESORT: &str = "download";
/// The longest extension kept whole when a name is shortened, dot included.
const MAX_EXTENSION_BYTES: usize = 16;

/// A file name that is safe on Linux, macOS and Windows and in a browser's save dialog, made from
/// `name` (a device name, say), at most `max_bytes` bytes of UTF-8 (at least 16), never empty.
///
/// NFC first; then dropped: path separators (`/`, `\`), control characters and invisible ones
/// (bidi overrides and isolates, zero-width characters: [`crate::is_control_or_invisible`]);
/// replaced by `_`: the characters Windows forbids (`< > : " | ? *`); runs of white space become one
/// space; leading dots and spaces go (no hidden file, no `..`), and so do trailing dots and spaces
/// (Windows drops them); a Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`,
/// `LPT0`–`LPT9` and their superscript-digit forms, any case, with any extension) gets a leading
/// `_`. A name too long is cut at a character boundary, keeping a short extension. If nothing is
/// left, `fallback` (made safe the same way), and if that is empty too, `download`.
///
/// ```
/// use phaze_sanitize::safe_filename;
/// assert_eq!(safe_filename("../../etc/passwd", 64, "device"), "etcpasswd");
/// assert_eq!(safe_filename("con.conf", 64, "device"), "_con.conf");
/// assert_eq!(safe_filename("my\u{202E}fdp.exe", 64, "device"), "myfdp.exe");
/// assert_eq!(safe_filename("...", 64, "device"), "device");
/// ```
pub fn safe_filename(name: &str, max_bytes: usize, fallback: &str) -> String {
    let max_bytes = max_bytes.max(MAX_EXTENSION_BYTES);
    let cleaned = clean(name, max_bytes);
    if !cleaned.is_empty() {
        return cleaned;
    }
    match clean(fallback, max_bytes) {
        f if f.is_empty() => LAST_RESORT.to_owned(),
        f => f,
    }
}

fn clean(name: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(name.len().min(max_bytes));
    let mut space = false;
    for c in name.nfc() {
        if c == '/' || c == '\\' || crate::is_control_or_invisible(c) {
            continue;
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(if matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
            '_'
        } else {
            c
        });
    }
    // Dropping a character between two combining marks can leave a sequence that is no longer
    // NFC: normalise again. Trimming never makes a name longer, so trimming after each cut keeps
    // both rules.
    let out: String = out.nfc().collect();
    let trim = |s: &str| s.trim_matches(['.', ' ']).to_owned();
    let mut name = trim(&shorten(&trim(&out), max_bytes));
    if is_reserved(&name) {
        name = trim(&shorten(&format!("_{name}"), max_bytes));
    }
    name
}

/// At most `max_bytes` bytes, cut at a character boundary; an extension of a few bytes is kept.
fn shorten(name: &str, max_bytes: usize) -> String {
    if name.len() <= max_bytes {
        return name.to_owned();
    }
    let extension = name
        .rfind('.')
        .filter(|&dot| dot > 0 && name.len() - dot <= MAX_EXTENSION_BYTES)
        .map_or("", |dot| &name[dot..]);
    let mut room = max_bytes - extension.len();
    while !name.is_char_boundary(room) {
        room -= 1;
    }
    match name[..room].trim_end_matches(['.', ' ']) {
        // Nothing of the stem fits beside the extension: cut the name as a whole.
        "" if !extension.is_empty() => shorten(&name[..name.len() - extension.len()], max_bytes),
        stem => format!("{stem}{extension}"),
    }
}

/// Whether Windows treats `name` as a device: the part before the first dot, with trailing
/// spaces ignored, is one of its device names, in any case.
fn is_reserved(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default().trim_end();
    let upper = stem.to_ascii_uppercase();
    match upper.as_str() {
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$" => true,
        _ => {
            let mut chars = upper.chars();
            let prefix: String = chars.by_ref().take(3).collect();
            let digit: Vec<char> = chars.collect();
            (prefix == "COM" || prefix == "LPT")
                && digit.len() == 1
                && (digit[0].is_ascii_digit() || matches!(digit[0], '¹' | '²' | '³'))
        }
    }
}

/// `Content-Disposition: attachment` offering `filename` (already made safe by
/// [`safe_filename`]), per RFC 6266: an ASCII `filename` for old clients (other characters become
/// `_`) and the exact name as `filename*` (RFC 8187, UTF-8, percent-encoded). The value is plain
/// ASCII with no quote, backslash or line break a name could smuggle in.
///
/// ```
/// use phaze_sanitize::content_disposition;
/// assert_eq!(
///     content_disposition("café.conf"),
///     "attachment; filename=\"caf_.conf\"; filename*=UTF-8''caf%C3%A9.conf"
/// );
/// ```
pub fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(filename.len() * 3);
    for b in filename.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_names_become_safe_and_keep_what_they_can() {
        for (name, expected) in [
            ("laptop", "laptop"),
            ("  my   phone  ", "my phone"),
            ("../../etc/passwd", "etcpasswd"),
            ("..\\..\\windows\\system32", "windowssystem32"),
            ("/", "device"),
            ("", "device"),
            ("CON", "_CON"),
            ("con.txt", "_con.txt"),
            ("Lpt9.conf", "_Lpt9.conf"),
            ("COM¹", "_COM¹"),
            ("nul .tar.gz", "_nul .tar.gz"),
            ("console", "console"),
            ("COM10", "COM10"),
            ("name.", "name"),
            ("name. . .", "name"),
            (".hidden", "hidden"),
            ("a\r\nContent-Type: text/html", "aContent-Type_ texthtml"),
            ("quote\"me", "quote_me"),
            ("what?*<>|", "what_____"),
            ("evil\u{202E}gnp.exe", "evilgnp.exe"),
            ("zero\u{200B}width", "zerowidth"),
            ("e\u{301}", "é"),
        ] {
            assert_eq!(safe_filename(name, 64, "device"), expected, "{name:?}");
        }
        // 64 emoji of four bytes each: cut at a character boundary to the byte limit.
        let emoji = "😀".repeat(64);
        let safe = safe_filename(&emoji, 64, "device");
        assert_eq!(safe, "😀".repeat(16));
        // A long name keeps its extension.
        let long = format!("{}.conf", "x".repeat(300));
        assert_eq!(
            safe_filename(&long, 64, "device"),
            format!("{}.conf", "x".repeat(59))
        );
        assert_eq!(safe_filename("...", 64, ".."), "download");
    }

    #[test]
    fn the_header_is_ascii_and_carries_the_exact_name() {
        assert_eq!(
            content_disposition("laptop.conf"),
            "attachment; filename=\"laptop.conf\"; filename*=UTF-8''laptop.conf"
        );
        assert_eq!(
            content_disposition("мой телефон.conf"),
            "attachment; filename=\"___ _______.conf\"; filename*=UTF-8''%D0%BC%D0%BE%D0%B9%20%D1%82%D0%B5%D0%BB%D0%B5%D1%84%D0%BE%D0%BD.conf"
        );
    }

    fn percent_decode(s: &str) -> Vec<u8> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(0));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_unicode_gives_a_safe_name(name in any::<String>(), max in 16usize..300) {
            let safe = safe_filename(&name, max, "device");
            prop_assert!(!safe.is_empty());
            prop_assert!(safe.len() <= max, "{} bytes > {max}", safe.len());
            prop_assert!(!safe.chars().any(|c| c == '/' || c == '\\'
                || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
                || crate::is_control_or_invisible(c)));
            prop_assert!(!safe.starts_with(['.', ' ']) && !safe.ends_with(['.', ' ']));
            prop_assert!(!is_reserved(&safe), "{safe:?}");
            prop_assert!(unicode_normalization::is_nfc(&safe));
            prop_assert_eq!(safe_filename(&safe, max, "device"), safe.clone(), "idempotent");
        }

        #[test]
        fn the_header_never_breaks_and_round_trips(name in any::<String>()) {
            let safe = safe_filename(&name, 255, "device");
            let header = content_disposition(&safe);
            prop_assert!(header.bytes().all(|b| (0x20..0x7f).contains(&b)));
            let star = header.split("filename*=UTF-8''").nth(1).unwrap_or_default();
            prop_assert_eq!(percent_decode(star), safe.as_bytes().to_vec());
            let plain = header.split("filename=\"").nth(1).unwrap_or_default();
            prop_assert_eq!(plain.matches('"').count(), 1, "one closing quote: {}", header);
        }
    }
}
