//! The HTTP edge: who the client is, the outermost frame (request id, security headers, generic
//! error pages), and the visitor layer (session, CSRF).

pub mod cookies;
pub mod frame;
pub mod visitor;
