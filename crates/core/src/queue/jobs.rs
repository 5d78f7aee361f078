//! The versioned jobs that travel on the broker. A worker refuses (parks) a
//! version it does not know instead of guessing.

use serde::{Deserialize, Serialize};

/// An issue job as it travels on the broker. Versioned so a consumer can refuse
/// (park) a shape it does not know instead of guessing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueJob {
    /// `{"v":1,"orderCode":"…"}`: issue the coupon of one order.
    V1 { order_code: String },
}

#[derive(Serialize, Deserialize)]
struct IssueJobWire {
    v: u32,
    #[serde(rename = "orderCode")]
    order_code: String,
}

impl IssueJob {
    pub fn to_bytes(&self) -> Vec<u8> {
        let IssueJob::V1 { order_code } = self;
        let wire = IssueJobWire { v: 1, order_code: order_code.clone() };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<IssueJob, String> {
        let wire: IssueJobWire = serde_json::from_slice(bytes).map_err(|e| format!("not an issue job: {e}"))?;
        match wire.v {
            1 => Ok(IssueJob::V1 { order_code: wire.order_code }),
            other => Err(format!("unknown issue job version {other}")),
        }
    }

    pub fn order_code(&self) -> &str {
        let IssueJob::V1 { order_code } = self;
        order_code
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
        assert!(IssueJob::from_bytes(b"nope").is_err());
    }
}
