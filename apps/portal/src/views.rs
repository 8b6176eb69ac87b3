//! Templates (tera, HTML autoescaped) and static assets, compiled into the binary so it runs from
//! any directory.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;
use tera::{Context, Tera};

use crate::errors::AppError;

macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("../../../templates/", $name)))),*]
    };
}

/// Marks a response whose body a handler rendered on purpose (a 401 login page, a 422 form with
/// its message), so the frame middleware does not replace it with the generic error page.
#[derive(Clone, Copy, Debug)]
pub struct Rendered;

/// The compiled templates.
pub struct Views {
    tera: Tera,
}

impl Views {
    /// Compiles every template; a syntax error is a start-up failure.
    pub fn new() -> Result<Self, tera::Error> {
        let mut tera = Tera::default();
        tera.add_raw_templates(templates![
            "base.html",
            "index.html",
            "register.html",
            "register_done.html",
            "login.html",
            "account.html",
            "sessions.html",
            "error.html",
        ])?;
        tera.autoescape_on(vec![".html"]);
        Ok(Self { tera })
    }

    /// Renders `template` to a string.
    pub fn render_string(&self, template: &str, ctx: &Context) -> Result<String, AppError> {
        Ok(self.tera.render(template, ctx)?)
    }

    /// Renders `template` as an HTML response with `status`.
    pub fn render(
        &self,
        template: &str,
        status: StatusCode,
        ctx: &Context,
    ) -> Result<HttpResponse, AppError> {
        let body = self.render_string(template, ctx)?;
        let mut res = HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body);
        res.extensions_mut().insert(Rendered);
        Ok(res)
    }
}

/// A user as templates see it.
#[derive(Serialize)]
pub struct UserView<'a> {
    /// Login address.
    pub email: &'a str,
    /// Display name (escaped by the template engine).
    pub display_name: &'a str,
    /// Operator flag.
    pub is_admin: bool,
}

/// `/static/app.css`.
pub const APP_CSS: &str = include_str!("../static/app.css");
/// `/static/app.js`.
pub const APP_JS: &str = include_str!("../static/app.js");

/// Formats an instant for pages: `2026-01-31 14:05 UTC`.
pub fn format_time(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}
