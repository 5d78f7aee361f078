//! The versioned jobs that travel on the broker. A worker refuses (parks) a
//! version it does not know instead of guessing.

use serde::{Deserialize, Serialize};

use crate::vocab::IssueLane;

/// An issue job as it travels on the broker. Versioned so a consumer can refuse
/// (park) a shape it does not know instead of guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueJob {
    /// `{"v":1,"orderCode":"…"}`: issue the coupon of one order.
    V1 { order_code: String },
    /// `{"v":2,"orderCodes":["…",…]}`: issue the coupons of many orders. Bulk doors
    /// (CSV loads, scheduled releases) use it so a million orders are thousands of
    /// messages, not a million; the consumer handles each order as if it had come
    /// alone and sends any retry or parking on as a V1 job.
    V2 { order_codes: Vec<String> },
}

#[derive(Serialize, Deserialize)]
struct IssueJobWire {
    v: u32,
    #[serde(rename = "orderCode", default, skip_serializing_if = "Option::is_none")]
    order_code: Option<String>,
    #[serde(rename = "orderCodes", default, skip_serializing_if = "Option::is_none")]
    order_codes: Option<Vec<String>>,
    /// Absent on interactive jobs, as on every job from before lanes existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lane: Option<IssueLane>,
}

impl IssueJob {
    /// The job for these orders: V1 for one, V2 for several.
    pub fn for_orders(mut order_codes: Vec<String>) -> IssueJob {
        if order_codes.len() == 1 {
            if let Some(order_code) = order_codes.pop() {
                return IssueJob::V1 { order_code };
            }
        }
        IssueJob::V2 { order_codes }
    }

    /// The job as an interactive one.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_in(IssueLane::Interactive)
    }

    /// The job in `lane`: the lane travels with it (`"lane":"campaign"`), so a
    /// campaign order coming back from a retry tier, which returns every job to
    /// the interactive queue, is still served as a campaign's.
    pub fn to_bytes_in(&self, lane: IssueLane) -> Vec<u8> {
        let lane = (lane != IssueLane::Interactive).then_some(lane);
        let wire = match self {
            IssueJob::V1 { order_code } => {
                IssueJobWire { v: 1, order_code: Some(order_code.clone()), order_codes: None, lane }
            }
            IssueJob::V2 { order_codes } => {
                IssueJobWire { v: 2, order_code: None, order_codes: Some(order_codes.clone()), lane }
            }
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<IssueJob, String> {
        Self::from_bytes_in(bytes).map(|(job, _)| job)
    }

    /// The job and the lane it travels in.
    pub fn from_bytes_in(bytes: &[u8]) -> Result<(IssueJob, IssueLane), String> {
        let wire: IssueJobWire = serde_json::from_slice(bytes).map_err(|e| format!("not an issue job: {e}"))?;
        let lane = wire.lane.unwrap_or(IssueLane::Interactive);
        match (wire.v, wire.order_code, wire.order_codes) {
            (1, Some(order_code), _) => Ok((IssueJob::V1 { order_code }, lane)),
            (2, _, Some(order_codes)) if !order_codes.is_empty() => Ok((IssueJob::V2 { order_codes }, lane)),
            (1 | 2, _, _) => Err(format!("issue job v{} without its order codes", wire.v)),
            (other, _, _) => Err(format!("unknown issue job version {other}")),
        }
    }

    /// The orders this job covers.
    pub fn order_codes(&self) -> &[String] {
        match self {
            IssueJob::V1 { order_code } => std::slice::from_ref(order_code),
            IssueJob::V2 { order_codes } => order_codes,
        }
    }
}

/// A notify job: deliver one status report. `{"v":1,"notifyId":"…"}`, plus the
/// target's `endpoint` (host:port) when known, so a notifier can tell that an
/// endpoint is already saturated without reading the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyJob {
    V1 { notify_id: String, endpoint: Option<String> },
}

#[derive(Serialize, Deserialize)]
struct NotifyJobWire {
    v: u32,
    #[serde(rename = "notifyId")]
    notify_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
}

impl NotifyJob {
    pub fn to_bytes(&self) -> Vec<u8> {
        let NotifyJob::V1 { notify_id, endpoint } = self;
        let wire = NotifyJobWire { v: 1, notify_id: notify_id.clone(), endpoint: endpoint.clone() };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<NotifyJob, String> {
        let wire: NotifyJobWire = serde_json::from_slice(bytes).map_err(|e| format!("not a notify job: {e}"))?;
        match wire.v {
            1 => Ok(NotifyJob::V1 { notify_id: wire.notify_id, endpoint: wire.endpoint }),
            other => Err(format!("unknown notify job version {other}")),
        }
    }

    pub fn notify_id(&self) -> &str {
        let NotifyJob::V1 { notify_id, .. } = self;
        notify_id
    }

    pub fn endpoint(&self) -> Option<&str> {
        let NotifyJob::V1 { endpoint, .. } = self;
        endpoint.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_wire_format_is_versioned() {
        let job = IssueJob::V1 { order_code: "LJ1".into() };
        assert_eq!(job.to_bytes(), br#"{"v":1,"orderCode":"LJ1"}"#.to_vec());
        assert_eq!(IssueJob::from_bytes(br#"{"v":1,"orderCode":"LJ1"}"#), Ok(job));
        assert!(IssueJob::from_bytes(br#"{"v":2,"orderCode":"LJ1"}"#).is_err());
        assert!(IssueJob::from_bytes(br#"{"v":3,"orderCode":"LJ1"}"#).is_err());
        let batch = IssueJob::for_orders(vec!["LJ1".into(), "LJ2".into()]);
        assert_eq!(batch.to_bytes(), br#"{"v":2,"orderCodes":["LJ1","LJ2"]}"#.to_vec());
        assert_eq!(IssueJob::from_bytes(&batch.to_bytes()), Ok(batch));
        assert!(IssueJob::from_bytes(br#"{"v":2,"orderCodes":[]}"#).is_err());
        assert_eq!(IssueJob::for_orders(vec!["LJ1".into()]), IssueJob::V1 { order_code: "LJ1".into() });
        assert!(IssueJob::from_bytes(b"nope").is_err());
    }

    #[test]
    fn a_campaign_job_says_so_and_an_old_job_is_interactive() {
        let job = IssueJob::for_orders(vec!["LJ1".into(), "LJ2".into()]);
        let bytes = job.to_bytes_in(IssueLane::Campaign);
        assert_eq!(bytes, br#"{"v":2,"orderCodes":["LJ1","LJ2"],"lane":"campaign"}"#.to_vec());
        assert_eq!(IssueJob::from_bytes_in(&bytes), Ok((job, IssueLane::Campaign)));
        let old = br#"{"v":1,"orderCode":"LJ1"}"#;
        assert_eq!(
            IssueJob::from_bytes_in(old),
            Ok((IssueJob::V1 { order_code: "LJ1".into() }, IssueLane::Interactive))
        );
        assert!(IssueJob::from_bytes_in(br#"{"v":1,"orderCode":"LJ1","lane":"vip"}"#).is_err());
    }
}
