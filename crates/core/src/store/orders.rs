//! Reading orders back: the merchant's query endpoint and operator tools.

use time::OffsetDateTime;

use super::{Store, StoreError};
use crate::money::Fen;
use crate::status::OrderStatus;
use crate::vocab::Source;

/// SQL predicates that partial indexes are built on (migrations 0001, 0004, 0014).
/// PostgreSQL uses such an index only when the query spells the predicate with
/// literals (a `$1` cannot prove `status = 0`), so these fragments are the one
/// place a status number is written in SQL outside the store's own statements.
/// Every other query takes the status as a parameter ([`OrderStatus`] is `ToSql`).
pub mod predicates {
    /// Stored and not yet handed to the broker: the relay's and the scheduler's
    /// work list (indexes `orders_not_enqueued`, `orders_unreleased`).
    pub const UNRELEASED: &str = "enqueued_at IS NULL AND status = 0";
    /// Released campaign orders not final yet, neither parked nor waiting in a
    /// retry tier: what a campaign's release window counts (index
    /// `orders_in_flight`, migration 0014).
    pub const IN_FLIGHT: &str = "campaign IS NOT NULL AND enqueued_at IS NOT NULL AND status IN (0, 1) \
                                 AND dead_at IS NULL AND last_error IS NULL";
}

/// How a merchant names one of its orders.
#[derive(Debug, Clone)]
pub enum OrderLookup {
    OrderCode(String),
    BizCode(String),
}

#[derive(Debug, Clone)]
pub struct OrderView {
    pub order_code: String,
    pub merchant_id: String,
    pub biz_code: String,
    pub open_id: String,
    pub app_id: String,
    pub product_code: String,
    pub activity_id: String,
    pub callback_url: Option<String>,
    pub status: OrderStatus,
    pub settlement: Fen,
    pub coupon_id: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub source: Source,
    pub enqueued_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

const ORDER_COLUMNS: &str =
    "order_code, merchant_id, biz_code, open_id, app_id, product_code, activity_id, callback_url,
     status, settlement_fen, coupon_id, attempts, last_error, source, enqueued_at, created_at, updated_at, finished_at";

impl Store {
    /// One order of `merchant_id`; another merchant's order is "not found".
    pub async fn find_order(&self, merchant_id: &str, lookup: &OrderLookup) -> Result<Option<OrderView>, StoreError> {
        let client = self.client().await?;
        let (column, key) = match lookup {
            OrderLookup::OrderCode(c) => ("order_code", c),
            OrderLookup::BizCode(b) => ("biz_code", b),
        };
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND {column} = $2");
        let row = client.query_opt(&sql, &[&merchant_id, key]).await?;
        row.map(order_from_row).transpose()
    }

    /// Any order by its code, for operators.
    pub async fn order_by_code(&self, order_code: &str) -> Result<Option<OrderView>, StoreError> {
        let client = self.client().await?;
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_code = $1");
        client.query_opt(&sql, &[&order_code]).await?.map(order_from_row).transpose()
    }
}

fn order_from_row(row: tokio_postgres::Row) -> Result<OrderView, StoreError> {
    Ok(OrderView {
        order_code: row.get(0),
        merchant_id: row.get(1),
        biz_code: row.get(2),
        open_id: row.get(3),
        app_id: row.get(4),
        product_code: row.get(5),
        activity_id: row.get(6),
        callback_url: row.get(7),
        status: row.try_get(8)?,
        settlement: Fen(row.get(9)),
        coupon_id: row.get(10),
        attempts: row.get(11),
        last_error: row.get(12),
        source: row.try_get(13)?,
        enqueued_at: row.get(14),
        created_at: row.get(15),
        updated_at: row.get(16),
        finished_at: row.get(17),
    })
}
