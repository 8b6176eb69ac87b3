//! Who the client is: [`phaze_ratelimit::TrustedProxies`] over actix's request, decided once per
//! request by [`resolve`] and kept in the request's extensions for every layer after it.

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap;
use actix_web::HttpMessage;
pub use phaze_ratelimit::{ClientInfo, TrustedProxies};

/// actix's headers as [`phaze_ratelimit::Headers`].
pub struct ActixHeaders<'a>(pub &'a HeaderMap);

impl phaze_ratelimit::Headers for ActixHeaders<'_> {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        self.0.get_all(name).filter_map(|v| v.to_str().ok())
    }
}

/// Decides the client of `req` (address and scheme) from the peer and the one header family the
/// trusted proxies set, and stores it in the request's extensions, where [`client_of`] and the
/// visitor layer find it. Call it first, from the outermost middleware.
pub fn resolve(req: &ServiceRequest, proxies: &TrustedProxies) -> ClientInfo {
    let mut client = proxies.client(
        req.peer_addr().map(|p| p.ip()),
        &ActixHeaders(req.headers()),
    );
    // A TLS listener: the connection itself is HTTPS, whatever a proxy header says.
    client.https |= req.app_config().secure();
    req.extensions_mut().insert(client);
    client
}

/// The client [`resolve`] decided; without it (a route outside that layer by mistake), the
/// unspecified address over plain HTTP, which no budget or binding mistakes for a real client.
pub fn client_of(req: &impl HttpMessage) -> ClientInfo {
    req.extensions()
        .get::<ClientInfo>()
        .copied()
        .unwrap_or(ClientInfo {
            ip: std::net::IpAddr::from([0, 0, 0, 0]),
            https: false,
        })
}
