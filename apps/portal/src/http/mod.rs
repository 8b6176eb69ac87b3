//! The portal's own HTTP edge: the outermost frame (request id, client, security headers,
//! generic error pages) and the notice cookie. The visitor layer (session, CSRF, cookies) is
//! `phaze_actix::VisitorLayer`, wrapped in `app::routes`.

pub mod cookies;
pub mod frame;
