//! The open API's two methods: place a coupon order, query an order.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use lijian_core::status::ApiStatus;
use lijian_core::store::{OrderLookup, OrderView};
use lijian_producer::{IntakeOutcome, OrderRequest, Source};
use serde_json::{json, Value};

use crate::auth::{authenticate, consume_nonce, Naming};
use crate::response::{success, ApiError};
use crate::AppState;

/// Bodies above this are refused (status 3) before anything is parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole body within `timeout` (a client trickling it would otherwise hold
/// the connection and a task for as long as it likes).
async fn read_body(body: Body, timeout: std::time::Duration) -> Result<axum::body::Bytes, ApiError> {
    tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| {
            ApiError::bad_parameter(format!(
                "body not received within {}",
                lijian_core::config::format_duration(timeout)
            ))
        })?
        .map_err(|_| ApiError::bad_parameter(format!("body is larger than {} KiB", MAX_BODY_BYTES / 1024)))
}

fn optional_text(body: &Value, field: &str) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_parameter(format!("{field} must be a string"))),
    }
}

fn text(body: &Value, field: &str) -> Result<String, ApiError> {
    Ok(optional_text(body, field)?.unwrap_or_default())
}

/// `POST /v1/openapi/order/wechat/coupons`
pub async fn create_coupon_order(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let answer = place(&state, peer, &headers, body).await;
    let metrics = &state.metrics;
    metrics.latency.observe(started.elapsed());
    match &answer {
        Ok(_) => {
            metrics.accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => metrics.refused.add(&e.status.code().to_string()),
    }
    answer
}

async fn place(state: &AppState, peer: SocketAddr, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let raw = read_body(body, state.body_timeout).await?;
    let auth =
        authenticate(&state.store, &state.merchants, state.window, (headers, &raw), peer.ip(), Naming::Body).await?;
    let request = OrderRequest {
        merchant_id: auth.merchant_id,
        biz_code: text(&auth.body, "bizCode")?,
        open_id: text(&auth.body, "openId")?,
        app_id: optional_text(&auth.body, "appId")?,
        product_code: text(&auth.body, "productCode")?,
        activity_id: text(&auth.body, "activityId")?,
        callback_url: optional_text(&auth.body, "callbackUrl")?,
        source: Source::Api,
        replay_guard: Some(auth.replay_guard),
    };
    request.validate(&state.callback_guard).map_err(ApiError::bad_parameter)?;
    let biz_code = request.biz_code.clone();
    let placed = state.producer.place(request).await.map_err(|e| {
        tracing::error!(error = %e, biz_code, "order intake failed");
        ApiError::internal()
    })?;
    match placed.outcome {
        IntakeOutcome::Accepted { order_code, settlement } => {
            tracing::info!(order_code, biz_code, enqueued = placed.enqueued, "order accepted");
            Ok(success(
                json!({"orderCode": order_code, "bizCode": biz_code, "settlementPrice": settlement.to_yuan_json()}),
            ))
        }
        IntakeOutcome::Duplicate { order_code, settlement, same_request } => Err(ApiError {
            status: if same_request { ApiStatus::DuplicateBizCode } else { ApiStatus::OrderAbnormal },
            message: if same_request {
                "duplicate bizCode: this order already exists; nothing new was charged".into()
            } else {
                "order abnormal: this bizCode belongs to an order with a different openId, activityId or \
                 productCode; nothing was charged"
                    .into()
            },
            data: json!({"orderCode": order_code, "bizCode": biz_code, "settlementPrice": settlement.to_yuan_json()}),
        }),
        IntakeOutcome::Refused { status, reason } => Err(ApiError::new(status, reason)),
    }
}

/// `POST /v1/openapi/order/info` with `{"orderCode"}` or `{"bizCode"}`: the
/// merchant is the `businessId` header's, as on the original platform.
pub async fn order_info(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let raw = read_body(body, state.body_timeout).await?;
    let auth =
        authenticate(&state.store, &state.merchants, state.window, (&headers, &raw), peer.ip(), Naming::Header).await?;
    consume_nonce(&state.store, &auth.replay_guard).await?;
    let lookup = match (optional_text(&auth.body, "orderCode")?, optional_text(&auth.body, "bizCode")?) {
        (Some(code), _) => OrderLookup::OrderCode(code),
        (None, Some(biz)) => OrderLookup::BizCode(biz),
        (None, None) => return Err(ApiError::bad_parameter("orderCode or bizCode is required")),
    };
    let order = state
        .store
        .find_order(&auth.merchant_id, &lookup)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "order lookup failed");
            ApiError::internal()
        })?
        .ok_or_else(|| ApiError::new(ApiStatus::NotFound, "order not found"))?;
    Ok(success(order_json(&order)))
}

fn millis(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The order as merchants see it (times in milliseconds, money in yuan).
pub fn order_json(o: &OrderView) -> Value {
    json!({
        "orderCode": o.order_code,
        "bizCode": o.biz_code,
        "merchantId": o.merchant_id,
        "openId": o.open_id,
        "appId": o.app_id,
        "productCode": o.product_code,
        "activityId": o.activity_id,
        "status": o.status.code(),
        "statusText": o.status.label(),
        "couponId": o.coupon_id,
        "settlementPrice": o.settlement.to_yuan_json(),
        "createTime": millis(o.created_at),
        "updateTime": millis(o.updated_at),
        "finishTime": o.finished_at.map(millis),
    })
}

/// Any path or method the API does not have: status 4, still JSON.
pub async fn no_such_method() -> Response {
    ApiError::new(ApiStatus::NoSuchMethod, "no such method").into_response()
}
