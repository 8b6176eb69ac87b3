//! The visitor layer is `phaze-actix`'s ([`phaze_actix::VisitorLayer`]: session, account, CSRF,
//! the POST budget, and every cookie); this adapter finds the portal's configured layer in the
//! app state, so routes wrap it like any middleware.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
pub use phaze_actix::visitor::{Current, Visitor};

use crate::errors::AppError;
use crate::state::AppState;

/// The middleware; see [`phaze_actix::visitor`].
pub async fn visitor(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.error_response(AppError::Internal("application state missing".into())));
    };
    state.visitors.handle(req, next).await
}
