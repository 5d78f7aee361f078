//! The open API's envelope: every well-formed exchange is HTTP 200 with
//! `{"status","message","data"}`; the status comes from the platform's table.

use axum::response::{IntoResponse, Response};
use axum::Json;
use lijian_core::status::ApiStatus;
use serde_json::{json, Value};

/// An answer other than success, with a message that says what to fix.
#[derive(Debug)]
pub struct ApiError {
    pub status: ApiStatus,
    pub message: String,
    /// Only duplicates carry data (the existing order), so clients can reconcile.
    pub data: Value,
}

impl ApiError {
    pub fn new(status: ApiStatus, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), data: Value::Null }
    }

    pub fn bad_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(ApiStatus::BadParameter, message)
    }

    pub fn internal() -> ApiError {
        ApiError::new(ApiStatus::Internal, "internal error; retry with the same bizCode and a new nonce")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Json(json!({"status": self.status.code(), "message": self.message, "data": self.data})).into_response()
    }
}

/// A successful answer.
pub fn success(data: Value) -> Response {
    Json(json!({"status": 0, "message": "success", "data": data})).into_response()
}
