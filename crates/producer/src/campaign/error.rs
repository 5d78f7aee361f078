//! Why a campaign operation was refused. Each refusal an operator can meet is
//! a variant of its own with its values, so that a front end (the console)
//! can word it in the operator's language; the `Display` text is the CLI's.

use lijian_core::store::StoreError;
use lijian_core::vocab::CampaignState;
use time::OffsetDateTime;

use super::MAX_CAMPAIGN_NAME;

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("campaign {0} not found")]
    NotFound(String),
    #[error(transparent)]
    BadName(#[from] CampaignNameError),
    #[error("merchant {0} not found")]
    NoMerchant(String),
    #[error("campaign {name} belongs to merchant {merchant}; choose another --campaign name")]
    OtherMerchant { name: String, merchant: String },
    #[error("campaign {0} is cancelled; load into a new campaign")]
    LoadIntoCancelled(String),
    #[error(
        "campaign {name} already exists with another schedule (release at {}, rate {}); load with the same --at/--rate or into a new campaign",
        release_at.map(lijian_core::times::rfc3339_seconds).unwrap_or_else(|| "at once".into()),
        rate.map(|r| format!("{r}/s")).unwrap_or_else(|| "unpaced".into()),
    )]
    OtherSchedule { name: String, release_at: Option<OffsetDateTime>, rate: Option<i32> },
    #[error("campaign {name} is {state}, not {wanted}")]
    WrongState { name: String, state: CampaignState, wanted: CampaignState },
    #[error("campaign {0} is already cancelled")]
    AlreadyCancelled(String),
    #[error("campaign {name} has {orders} orders; only an empty campaign can be deleted (cancel it instead)")]
    NotEmpty { name: String, orders: i64 },
    /// Any other refusal, in English only (e.g. the database's own check).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CampaignError {
    /// The operator asked for something that cannot be (not the system failing).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, CampaignError::Store(_))
    }
}

impl From<tokio_postgres::Error> for CampaignError {
    fn from(e: tokio_postgres::Error) -> Self {
        CampaignError::Store(StoreError::Db(e))
    }
}

/// A campaign name that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CampaignNameError {
    #[error("campaign name must be 1 to {MAX_CAMPAIGN_NAME} characters")]
    Length,
    #[error("campaign name may contain only letters, digits, '_', '-' and '.'")]
    Characters,
}
