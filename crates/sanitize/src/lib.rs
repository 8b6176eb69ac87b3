//! Pure helpers for untrusted text. Phaze never "cleans" input by stripping tags: input is typed and
//! normalised on the way in (this crate), and escaped on the way out for the context it lands in
//! (askama's HTML escaping for pages, [`js_string`] and [`header_value`] for the other contexts).
//!
//! **Invariant:** nothing here does I/O or allocates more than a copy of its input.
//!
//! ```
//! use phaze_sanitize::{fold_email, same_origin_path, single_line, TextError};
//!
//! // One spelling per mailbox: NFKC, lower case, the domain as IDNA ASCII.
//! assert_eq!(fold_email(" Anna@Bücher.Example ").as_deref(), Some("anna@xn--bcher-kva.example"));
//! assert_eq!(fold_email("anna\u{200B}@example.org"), None); // invisible characters are refused
//!
//! // A text field is normalised and refused, never stripped.
//! assert_eq!(single_line("  Anna Müller ", 64).as_deref(), Ok("Anna Müller"));
//! assert_eq!(single_line("Anna\nBcc: x@example.org", 64), Err(TextError::ControlCharacter));
//! assert_eq!(single_line("Anna", 3), Err(TextError::TooLong { max: 3 }));
//!
//! // Only a same-origin path is a redirect target.
//! assert_eq!(same_origin_path("/account?tab=sessions"), Some("/account?tab=sessions"));
//! for next in ["//evil.example", "/\\evil.example", "https://evil.example", "/\t/evil.example"] {
//!     assert_eq!(same_origin_path(next), None);
//! }
//! ```
#![warn(missing_docs)]

use unicode_normalization::UnicodeNormalization;

/// Why a text field was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty after trimming.
    #[error("must not be empty")]
    Empty,
    /// Longer than the field allows, counted in Unicode scalar values after normalisation.
    #[error("must be at most {max} characters")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// Holds a control, bidirectional-override or other invisible formatting character.
    #[error("must not contain control characters")]
    ControlCharacter,
}

/// Normalises a single-line text field: Unicode NFC, surrounding white space trimmed, then refused if
/// it is empty, longer than `max_chars` characters, or holds control characters (including CR, LF,
/// TAB and NUL) or invisible formatting characters that can spoof how text reads (bidi overrides,
/// zero-width joiners, BOM).
pub fn single_line(input: &str, max_chars: usize) -> Result<String, TextError> {
    let text: String = input.nfc().collect();
    let text = text.trim();
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.chars().any(is_control_or_invisible) {
        return Err(TextError::ControlCharacter);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong { max: max_chars });
    }
    Ok(text.to_owned())
}

/// The one spelling of an email address, before any check of its shape: surrounding white space
/// trimmed, refused (`None`) if it holds a control or invisible character, Unicode NFKC, lower
/// case, and the domain (after the first `@`) converted to ASCII by strict IDNA (UTS #46), so
/// `Bücher.example`, `bücher.example` and `xn--bcher-kva.example` are one domain. Whatever
/// counts or stores addresses (accounts, login failure counters) folds them here, so no two
/// spellings of one mailbox are two subjects.
pub fn fold_email(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.chars().any(is_control_or_invisible) {
        return None;
    }
    let folded: String = raw.nfkc().collect::<String>().to_lowercase();
    let (local, domain) = folded.split_once('@')?;
    // Strict UTS #46: STD3 letters, digits and hyphens only, no label that starts or ends with a
    // hyphen, DNS lengths.
    let domain = idna::domain_to_ascii_strict(domain).ok()?;
    Some(format!("{local}@{domain}"))
}

/// Whether `c` is a control character (Unicode category Cc) or an invisible character that can
/// spoof how text reads or make two strings that look alike differ: bidi embeddings, overrides
/// and isolates, zero-width spaces and joiners, the soft hyphen, the byte order mark, variation
/// selectors, tag characters and the other default-ignorable code points. Identifiers (email
/// addresses) and single-line fields refuse them.
pub fn is_control_or_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' // soft hyphen
            | '\u{034F}' // combining grapheme joiner
            | '\u{061C}' // Arabic letter mark
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors and vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}' // line and paragraph separators
            | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}' // byte order mark
            | '\u{FFF0}'..='\u{FFFB}' // unassigned specials, interlinear annotations
            | '\u{1D173}'..='\u{1D17A}' // musical formatting
            | '\u{E0000}'..='\u{E0FFF}') // tags and variation selectors supplement
}

/// Returns `next` when it is a same-origin relative path that is safe to put in a `Location`
/// header: it starts with one `/`, is not protocol-relative (`//host`, `/\host`), holds no
/// backslash, white space or control character, and is at most 512 bytes. Anything else is `None`,
/// and callers fall back to their default page.
pub fn same_origin_path(next: &str) -> Option<&str> {
    let rest = next.strip_prefix('/')?;
    if next.len() > 512 || rest.starts_with('/') {
        return None;
    }
    // Browsers treat `\` as `/` and drop tabs and newlines, so `/\evil.com` and `/\t/evil.com`
    // become protocol-relative: refuse every such byte rather than reason about each.
    let clean = next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    clean.then_some(next)
}

/// Escapes `s` for the inside of a JavaScript string literal (single or double quoted) that may sit
/// in an HTML `<script>` element: quotes, backticks, backslash, `<`, `>`, `&`, line terminators
/// and every control character become `\uXXXX` escapes, so the value can neither end the string
/// nor the element.
pub fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' | '\'' | '\\' | '<' | '>' | '&' | '`' | '\u{2028}' | '\u{2029}' => {
                push_u_escape(&mut out, c)
            }
            c if c.is_control() => push_u_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out
}

fn push_u_escape(out: &mut String, c: char) {
    let mut buf = [0u16; 2];
    for unit in c.encode_utf16(&mut buf) {
        out.push_str(&format!("\\u{unit:04x}"));
    }
}

/// Makes `s` safe as (part of) an HTTP header value: every byte outside printable ASCII becomes
/// `_`, so neither CR/LF injection nor non-ASCII can reach a header. Quotes and backslashes are
/// replaced too, so the result can also sit inside a quoted-string parameter.
pub fn header_value(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests;

mod filename;
pub use filename::{content_disposition, safe_filename};
pub mod command;
mod safe_dir;
pub use command::{Argument, CommandError, CommandOutput, CommandPolicy, CommandRunner, Flag};
pub use safe_dir::SafeDir;
