//! VPN devices: list and add, download a configuration, delete. The rules are
//! [`phaze_devices::DeviceService`]'s; these handlers parse, call one operation and render.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use phaze_actix::{Current, Visitor};
use phaze_devices::{DeviceError, DeviceId, DeviceService};
use serde::Deserialize;
use std::sync::Arc;

use super::{layout, require_user, see_other};
use crate::errors::AppError;
use crate::http::cookies::PendingNotice;
use crate::state::AppState;
use crate::views::{self, format_time, DeviceQrPage, DeviceRow, DevicesPage, Notice};

type State = web::Data<AppState>;
type Page = Result<HttpResponse, actix_web::Error>;

fn service(state: &AppState) -> Result<&Arc<DeviceService>, AppError> {
    state.devices.as_ref().ok_or(AppError::NotFound)
}

fn failure(e: DeviceError) -> AppError {
    match e {
        DeviceError::NotFound => AppError::NotFound,
        DeviceError::Store(s) => AppError::unavailable(s),
        DeviceError::Pool(p) => AppError::unavailable(p),
        DeviceError::Provision(p) => AppError::unavailable(p),
        other => AppError::internal(other),
    }
}

async fn page(
    state: &AppState,
    visitor: &Visitor,
    current: &Current,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<Notice>,
) -> Result<HttpResponse, AppError> {
    let rows = match &state.devices {
        Some(devices) => devices
            .list(&current.account.id)
            .await
            .map_err(failure)?
            .into_iter()
            .map(|d| DeviceRow {
                id: d.id.to_string(),
                name: d.name.as_str().to_owned(),
                public_key: d.public_key.to_base64(),
                address: format!("{}, {}", d.address.v4, d.address.v6),
                created_at: format_time(d.created_at),
            })
            .collect(),
        None => Vec::new(),
    };
    let mut layout = layout(visitor).with_notice(notice);
    if let Some(message) = error {
        layout = layout.with_error("name", message);
    }
    views::render(
        status,
        &DevicesPage {
            layout,
            configured: state.devices.is_some(),
            limit: state.settings.devices.limit_per_account,
            devices: rows,
        },
    )
}

/// `GET /account/devices`
pub async fn list(state: State, visitor: Visitor, req: HttpRequest, notice: PendingNotice) -> Page {
    let current = require_user(&visitor, req.path())?;
    Ok(page(
        &state,
        &visitor,
        current,
        StatusCode::OK,
        None,
        notice.get(),
    )
    .await?)
}

/// `POST /account/devices` fields.
#[derive(Deserialize)]
pub struct AddForm {
    name: String,
}

/// `POST /account/devices`: a new device with its keys, address and peer.
pub async fn add(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<AddForm>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let devices = service(&state)?;
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    let message = match devices
        .add(&current.account.id, &form.name, state.clock.now())
        .await
    {
        Ok(_) => {
            visitor.queue_cookie(crate::http::cookies::notice(
                &visitor.cookies,
                Notice::DeviceAdded,
            ));
            return Ok(see_other("/account/devices"));
        }
        Err(DeviceError::InvalidName(why)) => format!("Device name: {why}."),
        Err(DeviceError::LimitReached) => format!(
            "You have the most devices an account can have ({}). Delete one to add another.",
            state.settings.devices.limit_per_account
        ),
        Err(DeviceError::PoolExhausted) => {
            return Err(AppError::unavailable(DeviceError::PoolExhausted).into());
        }
        Err(e) => return Err(failure(e).into()),
    };
    Ok(page(&state, &visitor, current, status, Some(&message), None).await?)
}

/// The configuration of the visitor's device `id`; any other id (someone else's, none, not a
/// UUID) is the same 404.
async fn owned_config(
    state: &AppState,
    visitor: &Visitor,
    req: &HttpRequest,
    id: &str,
) -> Result<(phaze_devices::Device, String), actix_web::Error> {
    let current = require_user(visitor, req.path())?;
    let id = DeviceId::parse(id).ok_or(AppError::NotFound)?;
    Ok(service(state)?
        .config(&current.account.id, &id)
        .await
        .map_err(failure)?)
}

/// `GET /account/devices/{id}/config`: the WireGuard configuration as a `text/plain` download
/// named after the device (made safe). Another account's device, or none: 404.
pub async fn config(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    id: web::Path<String>,
) -> Page {
    let (device, config) = owned_config(&state, &visitor, &req, &id).await?;
    let file = phaze_sanitize::safe_filename(device.name.as_str(), 60, "device");
    let disposition = phaze_sanitize::content_disposition(&format!("{file}.conf"));
    Ok(views::rendered(
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((header::CONTENT_DISPOSITION, disposition))
            .body(config),
    ))
}

/// `POST /account/devices/{id}/delete`: the server forgets the peer, the address is free.
pub async fn delete(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    id: web::Path<String>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let devices = service(&state)?;
    let id = DeviceId::parse(&id).ok_or(AppError::NotFound)?;
    devices
        .delete(&current.account.id, &id)
        .await
        .map_err(failure)?;
    visitor.queue_cookie(crate::http::cookies::notice(
        &visitor.cookies,
        Notice::DeviceDeleted,
    ));
    Ok(see_other("/account/devices"))
}

/// `GET /account/devices/{id}/qr`: the configuration as a QR code for phones. The owner only.
pub async fn qr(state: State, visitor: Visitor, req: HttpRequest, id: web::Path<String>) -> Page {
    let (device, config) = owned_config(&state, &visitor, &req, &id).await?;
    Ok(views::render(
        StatusCode::OK,
        &DeviceQrPage {
            layout: layout(&visitor),
            name: device.name.as_str(),
            qr_svg: views::qr_svg(&config)?,
        },
    )?)
}
