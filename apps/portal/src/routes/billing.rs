//! Billing: the account's subscription and the plans (`/billing`), the two ways to Stripe
//! (`/billing/checkout`, `/billing/portal`), and Stripe's webhook (`/webhooks/stripe`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use phaze_events::SecurityEvent;
use phaze_payments::{BillingError, Delivery, GatewayError, WebhookError};
use serde::Deserialize;

use super::{layout, require_user};
use crate::errors::AppError;
use crate::state::AppState;
use crate::views::{self, format_time, BillingPage, PlanView};
use phaze_actix::Visitor;

type State = web::Data<AppState>;
type Page = Result<HttpResponse, actix_web::Error>;

/// `GET /billing`
pub async fn show(state: State, visitor: Visitor, req: HttpRequest) -> Page {
    let current = require_user(&visitor, req.path())?;
    let overview = state
        .billing
        .overview(&current.account.id)
        .await
        .map_err(AppError::unavailable)?;
    let done = req.query_string() == "checkout=done";
    let plans = state
        .billing
        .plans()
        .iter()
        .map(|p| PlanView {
            id: &p.id,
            name: &p.name,
            current: overview.plan.as_ref().is_some_and(|c| c.id == p.id),
        })
        .collect();
    Ok(views::render(
        StatusCode::OK,
        &BillingPage {
            layout: layout(&visitor),
            status: overview.status.as_str(),
            plan: overview.plan.as_ref().map(|p| p.name.as_str()),
            current_period_end: overview.current_period_end.map(format_time),
            plans,
            can_manage: overview.has_customer && state.payments_configured(),
            can_subscribe: state.payments_configured(),
            checkout_done: done,
        },
    )?)
}

/// `POST /billing/checkout` fields.
#[derive(Deserialize)]
pub struct CheckoutForm {
    plan: String,
}

/// `POST /billing/checkout`: 303 to Stripe Checkout for the plan.
pub async fn checkout(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<CheckoutForm>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let now = state.clock.now();
    let hosted = state
        .billing
        .checkout(&current.account.id, &form.plan, now)
        .await
        .map_err(billing_failure)?;
    tracing::info!(session = %hosted.id, "checkout started");
    state.events.emit(SecurityEvent::CheckoutStarted {
        user: current.account.id,
    });
    Ok(super::see_other(&hosted.url))
}

/// `POST /billing/portal`: 303 to Stripe's Billing Portal for the account's customer.
pub async fn manage(state: State, visitor: Visitor, req: HttpRequest) -> Page {
    let current = require_user(&visitor, req.path())?;
    let hosted = state
        .billing
        .manage(&current.account.id, state.clock.now())
        .await
        .map_err(billing_failure)?;
    Ok(super::see_other(&hosted.url))
}

/// A forged plan or a portal without a customer is the caller's error (400); a provider that is
/// down or not configured is 503; one that refuses (a wrong price or key: configuration) is 502.
fn billing_failure(e: BillingError) -> AppError {
    match e {
        BillingError::UnknownPlan | BillingError::NoCustomer | BillingError::AlreadySubscribed => {
            AppError::BadRequest
        }
        BillingError::Gateway(e @ GatewayError::Unavailable(_)) => AppError::unavailable(e),
        BillingError::Gateway(e) => AppError::BadGateway(Box::new(e)),
        BillingError::Store(e) => AppError::unavailable(e),
    }
}

/// `POST /webhooks/stripe`: mounted outside the visitor layer, so no CSRF check and no session
/// apply; what stands in for them is the signature, checked on the raw bytes by
/// [`phaze_payments::Webhooks::deliver`], which acts on nothing else.
pub async fn stripe(state: State, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let client = phaze_actix::client::client_of(&req).ip;
    let signature = req
        .headers()
        .get("stripe-signature")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let (status, answer) = match state
        .webhooks
        .deliver(signature, &body, state.clock.now())
        .await
    {
        Ok(Delivery::InProgress) => (StatusCode::CONFLICT, "in progress"),
        Ok(delivery) => {
            tracing::info!(?delivery, "webhook delivered");
            (StatusCode::OK, "")
        }
        Err(WebhookError::Signature(why)) => {
            state.events.emit(SecurityEvent::WebhookSignatureFailure {
                client,
                reason: why.to_string(),
            });
            (StatusCode::BAD_REQUEST, "invalid signature")
        }
        Err(WebhookError::Event(why)) => {
            tracing::warn!(client = %client, error = %why, "signed webhook body refused");
            (StatusCode::BAD_REQUEST, "invalid event")
        }
        Err(e) => {
            tracing::error!(error = %crate::errors::chain(&e), "webhook not applied; Stripe will retry");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
    };
    let body = if status == StatusCode::OK {
        serde_json::json!({ "received": true })
    } else {
        serde_json::json!({ "error": answer })
    };
    views::rendered(HttpResponse::build(status).json(body))
}
