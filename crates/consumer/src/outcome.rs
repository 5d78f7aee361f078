//! What a WeChat Pay reply means for the order. Retryable, final and parking are
//! types, not strings, so the worker cannot confuse them.

use crate::wxpay::Reply;

/// The decision for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The coupon exists: finish the order as success.
    Issued { coupon_id: String },
    /// Not accepted, or unknown whether it was: send again later with the same
    /// out_request_no. `throttled` slows this sender down.
    Retry { reason: String, throttled: bool },
    /// WeChat refused for good: fail the order (status 3) and refund.
    Fail { code: String, message: String },
    /// Our configuration is wrong (key, mchid, appid): park the job, keep the order
    /// processing, so a fixed configuration plus a replay rescues it.
    Park { code: String, message: String },
}

/// WeChat codes that end the order as failed.
const FINAL_CODES: &[&str] = &[
    "NOT_ENOUGH",
    "USER_ACCOUNT_ABNORMAL",
    "REQUEST_BLOCKED",
    "RULE_LIMIT",
    "RESOURCE_NOT_EXISTS",
    "PARAM_ERROR",
    "INVALID_REQUEST",
];

/// WeChat codes that mean our configuration is at fault.
const CONFIGURATION_CODES: &[&str] = &["SIGN_ERROR", "MCH_NOT_EXISTS", "APPID_MCHID_NOT_MATCH"];

pub fn classify(reply: &Reply) -> Verdict {
    match reply {
        Reply::Issued { coupon_id } => Verdict::Issued { coupon_id: coupon_id.clone() },
        Reply::Unverifiable { http_status, reason } => {
            Verdict::Retry { reason: format!("HTTP {http_status} not verifiable: {reason}"), throttled: false }
        }
        Reply::NoAnswer { reason, timed_out } => Verdict::Retry {
            reason: if *timed_out { format!("timeout: {reason}") } else { format!("no answer: {reason}") },
            throttled: false,
        },
        Reply::Refused { http_status: 429, code, .. } => {
            Verdict::Retry { reason: format!("HTTP 429 {code}"), throttled: true }
        }
        Reply::Refused { http_status, code, .. } if *http_status >= 500 => {
            Verdict::Retry { reason: format!("HTTP {http_status} {code}"), throttled: false }
        }
        Reply::Refused { http_status, code, message } if CONFIGURATION_CODES.contains(&code.as_str()) => {
            Verdict::Park { code: code.clone(), message: format!("HTTP {http_status} {code}: {message}") }
        }
        Reply::Refused { http_status, code, message } if FINAL_CODES.contains(&code.as_str()) => {
            Verdict::Fail { code: code.clone(), message: format!("HTTP {http_status} {code}: {message}") }
        }
        // An answer we do not know how to read: a person should look before the
        // merchant is told anything, so it is parked, not failed.
        Reply::Refused { http_status, code, message } => Verdict::Park {
            code: if code.is_empty() { format!("HTTP_{http_status}") } else { code.clone() },
            message: format!("unexpected answer HTTP {http_status} {code}: {message}"),
        },
    }
}

/// Whether WeChat may have issued the coupon although the reply does not say
/// so: no answer, an answer we cannot trust, or a 5xx (WeChat's SYSTEM_ERROR
/// asks for a re-send with the same parameters; a proxy's 502 may follow a
/// request that arrived). Only a re-send with the same out_request_no tells.
pub fn outcome_unknown(reply: &Reply) -> bool {
    match reply {
        Reply::NoAnswer { .. } | Reply::Unverifiable { .. } => true,
        Reply::Refused { http_status, .. } => *http_status >= 500,
        Reply::Issued { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: &str) -> Verdict {
        classify(&Reply::Refused { http_status: status, code: code.into(), message: String::new() })
    }

    #[test]
    fn documented_outcomes() {
        assert!(matches!(refused(429, "FREQUENCY_LIMITED"), Verdict::Retry { throttled: true, .. }));
        assert!(matches!(refused(500, "SYSTEM_ERROR"), Verdict::Retry { throttled: false, .. }));
        assert!(matches!(refused(502, ""), Verdict::Retry { .. }));
        assert!(matches!(refused(503, ""), Verdict::Retry { .. }));
        for code in ["NOT_ENOUGH", "USER_ACCOUNT_ABNORMAL", "REQUEST_BLOCKED", "RULE_LIMIT"] {
            assert!(matches!(refused(403, code), Verdict::Fail { .. }), "{code}");
        }
        assert!(matches!(refused(404, "RESOURCE_NOT_EXISTS"), Verdict::Fail { .. }));
        assert!(matches!(refused(400, "PARAM_ERROR"), Verdict::Fail { .. }));
        assert!(matches!(refused(400, "INVALID_REQUEST"), Verdict::Fail { .. }));
        assert!(matches!(refused(401, "SIGN_ERROR"), Verdict::Park { .. }));
        assert!(matches!(refused(400, "MCH_NOT_EXISTS"), Verdict::Park { .. }));
        assert!(matches!(refused(400, "APPID_MCHID_NOT_MATCH"), Verdict::Park { .. }));
        assert!(matches!(refused(418, "TEAPOT"), Verdict::Park { .. }));
        let timeout = classify(&Reply::NoAnswer { reason: "x".into(), timed_out: true });
        assert!(matches!(timeout, Verdict::Retry { .. }));
        let unverifiable = classify(&Reply::Unverifiable { http_status: 200, reason: "bad sig".into() });
        assert!(matches!(unverifiable, Verdict::Retry { .. }));
    }

    #[test]
    fn unknown_outcomes_are_those_a_coupon_may_hide_behind() {
        let refusal =
            |status, code: &str| Reply::Refused { http_status: status, code: code.into(), message: "".into() };
        assert!(outcome_unknown(&Reply::NoAnswer { reason: "x".into(), timed_out: true }));
        assert!(outcome_unknown(&Reply::Unverifiable { http_status: 200, reason: "bad sig".into() }));
        assert!(outcome_unknown(&refusal(500, "SYSTEM_ERROR")));
        assert!(!outcome_unknown(&refusal(429, "FREQUENCY_LIMITED")));
        assert!(!outcome_unknown(&refusal(403, "NOT_ENOUGH")));
        assert!(!outcome_unknown(&refusal(401, "SIGN_ERROR")));
        assert!(!outcome_unknown(&Reply::Issued { coupon_id: "C".into() }));
    }
}
