use super::*;

fn check_line(input: &str, expected: Result<&str, TextError>) {
    assert_eq!(single_line(input, 8), expected.map(str::to_owned));
}

#[test]
fn single_line_trims_and_normalises() {
    check_line("  Ada  ", Ok("Ada"));
    // "e" + combining acute becomes the one precomposed character, so it counts once.
    check_line("Rene\u{301}e", Ok("Ren\u{e9}e"));
    check_line("12345678", Ok("12345678"));
}

#[test]
fn single_line_refuses_hostile_text() {
    check_line("", Err(TextError::Empty));
    check_line(" \t ", Err(TextError::Empty));
    check_line("123456789", Err(TextError::TooLong { max: 8 }));
    for bad in [
        "a\0b",
        "a\nb",
        "a\rb",
        "a\u{7f}",
        "a\u{202E}b",
        "a\u{200B}b",
        "\u{FEFF}ab",
        "a\u{2066}",
        "so\u{AD}ft",
        "a\u{FE0F}",
        "a\u{E0041}",
        "\u{3164}",
    ] {
        check_line(bad, Err(TextError::ControlCharacter));
    }
}

#[test]
fn html_payloads_are_kept_verbatim_for_output_escaping() {
    // Input is not stripped: escaping happens on output.
    let payload = "<img src=x onerror=alert(1)>";
    assert_eq!(single_line(payload, 64).unwrap(), payload);
}

#[test]
fn same_origin_path_accepts_local_paths_only() {
    for ok in [
        "/",
        "/account",
        "/account/sessions?x=1#y",
        "/%2F%2Fevil.com",
    ] {
        assert_eq!(same_origin_path(ok), Some(ok), "{ok}");
    }
    for bad in [
        "",
        "account",
        "//evil.com",
        "///evil.com",
        "/\\evil.com",
        "/\\/evil.com",
        "https://evil.com",
        "javascript:alert(1)",
        "/\t/evil.com",
        "/a b",
        "/\r\nSet-Cookie:x",
        "\\\\evil.com",
        "/caf\u{e9}",
        " /account",
    ] {
        assert_eq!(same_origin_path(bad), None, "{bad:?}");
    }
    assert_eq!(same_origin_path(&format!("/{}", "a".repeat(600))), None);
}

#[test]
fn js_string_cannot_break_out() {
    let out = js_string("\"';</script><!--\\`\u{2028}\n");
    assert!(
        !out.contains(['"', '\'', '<', '>', '`', '\n', '\u{2028}'].as_slice()),
        "{out}"
    );
    // Every backslash left is the start of a \uXXXX escape, never a raw one from the input.
    assert!(
        out.match_indices('\\')
            .all(|(i, _)| out[i + 1..].starts_with('u')),
        "{out}"
    );
    assert_eq!(js_string("a\"b"), "a\\u0022b");
    assert_eq!(js_string("</script>"), "\\u003c/script\\u003e");
    assert_eq!(js_string("😀"), "😀");
}

#[test]
fn header_value_has_no_line_breaks_or_quotes() {
    assert_eq!(
        header_value("a\r\nSet-Cookie: x=\"1\""),
        "a__Set-Cookie: x=_1_"
    );
    assert_eq!(header_value("d\u{e9}j\u{e0}"), "d_j_");
}
