use super::*;

fn check(code: &str, expected: Option<Notice>) {
    assert_eq!(Notice::from_code(code), expected, "{code:?}");
}

#[test]
fn every_notice_comes_back_from_its_code() {
    for notice in Notice::ALL {
        check(notice.code(), Some(notice));
        assert!(!notice.message().is_empty());
    }
}

#[test]
fn anything_else_in_the_cookie_is_ignored() {
    check("", None);
    check("Password-Changed", None);
    check("password-changed ", None);
    check("<script>alert(1)</script>", None);
    check("You have won a prize", None);
}

#[test]
fn the_notice_shows_in_a_status_box_apart_from_errors() {
    let page = IndexPage {
        layout: Layout::default()
            .with_notice(Some(Notice::PasswordChanged))
            .with_error("", "Something failed."),
    };
    let html = page.render().expect("renders");
    assert!(html.contains(r#"role="status" id="page-notice""#), "{html}");
    assert!(html.contains(Notice::PasswordChanged.message()));
    assert!(html.contains(r#"role="alert" id="page-error""#));
    let plain = IndexPage {
        layout: Layout::default(),
    };
    assert!(!plain.render().expect("renders").contains("page-notice"));
}
