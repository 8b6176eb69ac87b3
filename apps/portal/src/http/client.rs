//! Client detection lives in `phaze-ratelimit` ([`TrustedProxies`]); this is its adapter to
//! actix's header map.

use actix_web::http::header::HeaderMap;
pub use phaze_ratelimit::{ClientInfo, TrustedProxies};

/// actix's headers as [`phaze_ratelimit::Headers`].
pub struct ActixHeaders<'a>(pub &'a HeaderMap);

impl phaze_ratelimit::Headers for ActixHeaders<'_> {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        self.0.get_all(name).filter_map(|v| v.to_str().ok())
    }
}
