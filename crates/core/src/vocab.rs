//! The words lijian stores as text: where an order came from, a campaign's state,
//! how an attempt or a report ended, a ledger entry's kind, a queue lane.
//!
//! Each is an enum declared once with its stored spelling. That one mapping is
//! used everywhere the word crosses a boundary: SQL parameters and columns
//! (`ToSql`/`FromSql`, so queries say `state = $1` with a value, never a quoted
//! literal), JSON (serde), the CLI (`FromStr`, `Display`). The database keeps the
//! same spellings in its CHECK constraints (migrations); a word unknown to the
//! enum is an error when read, never a silent default.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

/// A stored word that is not one of its enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{word:?} is not a valid {what} (one of: {choices})")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub choices: String,
}

/// Declares a text vocabulary: the enum, its spellings and every conversion.
macro_rules! text_vocab {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and printed) spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;
            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                match word {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownWord {
                        what: $what,
                        word: word.to_string(),
                        choices: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
                self.as_str().to_sql(ty, out)
            }
            fn accepts(ty: &Type) -> bool {
                <&str as ToSql>::accepts(ty)
            }
            to_sql_checked!();
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn Error + Sync + Send>> {
                Ok(<&str as FromSql>::from_sql(ty, raw)?.parse::<$name>()?)
            }
            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    };
}

text_vocab! {
    /// The door an order came in through (`orders.source`).
    pub enum Source as "order source" {
        /// The signed open API.
        Api = "api",
        /// A CSV campaign load.
        Csv = "csv",
        /// A scheduled promotion.
        Schedule = "schedule",
    }
}

text_vocab! {
    /// Where a campaign stands (`campaigns.state`).
    pub enum CampaignState as "campaign state" {
        /// Releasing (or waiting for its start time).
        Active = "active",
        /// Stopped by an operator; resume continues at the pace, without a burst.
        Paused = "paused",
        /// Its unreleased orders were cancelled and refunded; refuses loads.
        Cancelled = "cancelled",
    }
}

text_vocab! {
    /// How one WeChat Pay attempt ended (`upstream_attempts.outcome`).
    pub enum AttemptOutcome as "attempt outcome" {
        /// The coupon was issued (or WeChat returned the one already issued).
        Issued = "issued",
        /// Retryable: the job goes to a retry tier.
        Retry = "retry",
        /// A final refusal: the order failed and was refunded.
        Failed = "failed",
        /// A configuration fault or retries exhausted: parked for an operator.
        Parked = "parked",
    }
}

text_vocab! {
    /// How a status report was closed (`reports.outcome`; NULL while it is owed).
    pub enum ReportOutcome as "report outcome" {
        /// The merchant answered SUCCESS.
        Delivered = "delivered",
        /// Neither the order nor the merchant has a callbackUrl: nothing to send.
        NoCallback = "no_callback",
        /// Attempts exhausted or the target refused: waits for an operator.
        Parked = "parked",
        /// An operator gave up on a parked report (`lijian dlq fail`): nothing
        /// more is sent.
        Dismissed = "dismissed",
    }
}

text_vocab! {
    /// Why money moved (`balance_ledger.kind`).
    pub enum LedgerKind as "ledger kind" {
        /// The balance a merchant was created with.
        Opening = "opening",
        /// Money an operator added.
        Topup = "topup",
        /// An order's settlement price (or a CSV batch's, in one row).
        Debit = "debit",
        /// A failed or cancelled order's settlement price given back.
        Refund = "refund",
        /// The settlement price charged again because the coupon arrived after
        /// the order had ended unissued and been refunded (may leave a debt).
        LateCharge = "late_charge",
    }
}

text_vocab! {
    /// The two kinds of work on the broker, each with its own queues and
    /// dead-letter queue.
    pub enum Lane as "lane" {
        /// Issue jobs: one order's coupon (consumer).
        Issue = "issue",
        /// Notify jobs: one status report to a merchant (notifier).
        Notify = "notify",
    }
}

text_vocab! {
    /// Which of the issue lane's two work queues a job travels in, and so whose
    /// turn its send is at the account's limit: interactive sends go first.
    pub enum IssueLane as "issue lane" {
        /// Orders from the open API (and operators' replays of them): a user
        /// waits for each, so they never queue behind campaigns.
        Interactive = "interactive",
        /// Campaign orders, released by the scheduler at the pace the account
        /// takes, in fair shares between merchants and campaigns.
        Campaign = "campaign",
    }
}

text_vocab! {
    /// What an operator may do in the console (`operators.role`).
    pub enum OperatorRole as "operator role" {
        /// Sees everything and acts: replay, fail, pause, resume, cancel, top up.
        Admin = "admin",
        /// Sees everything and changes nothing.
        Viewer = "viewer",
    }
}

text_vocab! {
    /// What an operator did (`audit_log.action`), through the console or the CLI.
    pub enum AuditAction as "audit action" {
        /// Parked issue jobs or reports put back in line (`dlq replay`).
        Replay = "replay",
        /// Parked orders failed with a refund, parked reports dismissed (`dlq fail`).
        Fail = "fail",
        /// Money added to a merchant's balance.
        Topup = "topup",
        /// A campaign loaded from a CSV file (and scheduled, if it says so).
        Load = "load",
        CampaignPause = "campaign_pause",
        CampaignResume = "campaign_resume",
        CampaignCancel = "campaign_cancel",
        CampaignDelete = "campaign_delete",
        OperatorAdd = "operator_add",
        OperatorDisable = "operator_disable",
        /// A new API token was issued to an operator.
        OperatorToken = "operator_token",
        /// An operator signed in to the console.
        Login = "login",
        /// A campaign's priority among its merchant's campaigns changed.
        CampaignPriority = "campaign_priority",
        // Admin commands of the CLI (`lijian merchant|product|activity|wxpay-account`).
        MerchantAdd = "merchant_add",
        /// Name, default callbackUrl or allowed addresses changed (`merchant set`).
        MerchantSet = "merchant_set",
        MerchantEnable = "merchant_enable",
        MerchantDisable = "merchant_disable",
        /// A request key added beside the merchant's live ones (rotation).
        MerchantKeyAdd = "merchant_key_add",
        MerchantKeyRetire = "merchant_key_retire",
        ProductAdd = "product_add",
        /// A product's price for new orders changed.
        ProductSet = "product_set",
        ActivityAdd = "activity_add",
        /// An activity's budget, window or enabled flag changed.
        ActivitySet = "activity_set",
        WxpayAccountAdd = "wxpay_account_add",
        WxpayAccountRate = "wxpay_account_rate",
        WxpayAccountEnable = "wxpay_account_enable",
        WxpayAccountDisable = "wxpay_account_disable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_through_text_and_json() {
        for s in CampaignState::ALL {
            assert_eq!(s.as_str().parse::<CampaignState>(), Ok(*s));
            assert_eq!(serde_json::to_string(s).ok(), Some(format!("\"{s}\"")));
        }
        for s in ReportOutcome::ALL {
            assert_eq!(s.to_string().parse::<ReportOutcome>(), Ok(*s));
        }
        let err = "halted".parse::<CampaignState>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("\"halted\" is not a valid campaign state (one of: active, paused, cancelled)")
        );
    }
}
