//! The two status vocabularies of the original platform: an order's lifecycle
//! (0–4) and the open API's answer codes (0–99). Kept together because merchants
//! read both and their numbers must never drift.

use std::error::Error;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// Lifecycle of an order, numbered as the original platform numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "i16", try_from = "i16")]
pub enum OrderStatus {
    /// Accepted and stored; the coupon has not been requested yet.
    Stored = 0,
    /// The consumer is issuing (or parked in the dead-letter queue).
    Processing = 1,
    /// The coupon is in the user's wallet.
    Success = 2,
    /// Issuing failed for good; the settlement price was refunded.
    Failed = 3,
    /// Cancelled before issuing; refunded.
    Cancelled = 4,
}

impl OrderStatus {
    /// Not final yet: stored or processing. The consumer may still work on these;
    /// only these can be finished, failed or cancelled.
    pub const OPEN: [OrderStatus; 2] = [OrderStatus::Stored, OrderStatus::Processing];

    pub fn code(self) -> i16 {
        self as i16
    }

    /// Issued, failed or cancelled: nothing changes it any more.
    pub fn is_final(self) -> bool {
        !OrderStatus::OPEN.contains(&self)
    }

    /// Every status, in lifecycle order.
    pub const ALL: [OrderStatus; 5] = [
        OrderStatus::Stored,
        OrderStatus::Processing,
        OrderStatus::Success,
        OrderStatus::Failed,
        OrderStatus::Cancelled,
    ];

    /// The word operators read in the CLI's counts (`merchant show`, `campaign
    /// status`): what happened to the order rather than the API's `statusText`.
    pub fn operator_word(self) -> &'static str {
        match self {
            OrderStatus::Stored => "accepted",
            OrderStatus::Processing => "processing",
            OrderStatus::Success => "issued",
            OrderStatus::Failed => "failed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            OrderStatus::Stored => "stored",
            OrderStatus::Processing => "processing",
            OrderStatus::Success => "success",
            OrderStatus::Failed => "failed",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

impl From<OrderStatus> for i16 {
    fn from(s: OrderStatus) -> i16 {
        s.code()
    }
}

impl TryFrom<i16> for OrderStatus {
    type Error = String;
    fn try_from(v: i16) -> Result<Self, String> {
        Ok(match v {
            0 => OrderStatus::Stored,
            1 => OrderStatus::Processing,
            2 => OrderStatus::Success,
            3 => OrderStatus::Failed,
            4 => OrderStatus::Cancelled,
            other => return Err(format!("unknown order status {other}")),
        })
    }
}

/// Goes to SQL as the `smallint` column `orders.status`, so queries take the
/// status as a parameter (`status = $1`, `status = ANY($1)`).
impl ToSql for OrderStatus {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        self.code().to_sql(ty, out)
    }
    fn accepts(ty: &Type) -> bool {
        <i16 as ToSql>::accepts(ty)
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for OrderStatus {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
        Ok(OrderStatus::try_from(i16::from_sql(ty, raw)?)?)
    }
    fn accepts(ty: &Type) -> bool {
        <i16 as FromSql>::accepts(ty)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The open API's status table. Every well-formed exchange is HTTP 200 with one
/// of these in the body's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiStatus {
    Success = 0,
    Failure = 1,
    BadSignature = 2,
    BadParameter = 3,
    NoSuchMethod = 4,
    StaleTimestamp = 5,
    NonceReused = 6,
    NotFound = 7,
    DuplicateBizCode = 8,
    InsufficientBalance = 9,
    IpNotAllowed = 10,
    OutOfStock = 11,
    OrderAbnormal = 98,
    Internal = 99,
}

impl ApiStatus {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// Maps a code stored by the accepting SQL function back to the enum.
    pub fn from_code(code: i32) -> Option<ApiStatus> {
        use ApiStatus::*;
        [
            Success,
            Failure,
            BadSignature,
            BadParameter,
            NoSuchMethod,
            StaleTimestamp,
            NonceReused,
            NotFound,
            DuplicateBizCode,
            InsufficientBalance,
            IpNotAllowed,
            OutOfStock,
            OrderAbnormal,
            Internal,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in (0..=11).chain([98, 99]) {
            assert_eq!(ApiStatus::from_code(code).map(ApiStatus::code), Some(code));
        }
        assert_eq!(ApiStatus::from_code(12), None);
        for code in 0..=4 {
            assert_eq!(OrderStatus::try_from(code).map(OrderStatus::code), Ok(code));
        }
    }
}
