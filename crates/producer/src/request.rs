//! An order request as every door hands it in, and the rules it must meet before
//! the database is asked anything.

pub use lijian_core::ssrf::Guard;
pub use lijian_core::vocab::Source;

/// One order to accept: the open API body's fields.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub merchant_id: String,
    pub biz_code: String,
    pub open_id: String,
    /// Empty: the activity's appid is used.
    pub app_id: Option<String>,
    pub product_code: String,
    pub activity_id: String,
    /// Empty: the merchant's default callback URL is used when reporting.
    pub callback_url: Option<String>,
    pub source: Source,
    /// The open API's (businessId, nonce): recorded in the accepting transaction so
    /// a replay is refused (status 6) without a commit of its own.
    pub replay_guard: Option<ReplayGuard>,
}

/// A request's nonce, unique per businessId.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    pub business_id: String,
    pub nonce: String,
}

/// Longest bizCode we store; merchants' order numbers are far shorter in practice
/// and WeChat's own identifiers stay under this.
pub const MAX_BIZ_CODE_LEN: usize = 64;
const MAX_ID_LEN: usize = 64;
const MAX_OPEN_ID_LEN: usize = 128;
const MAX_URL_LEN: usize = 512;

impl OrderRequest {
    /// Checks shape (presence, length, characters) and that a callbackUrl can
    /// ever pass `guard`; existence, balance and budget are the accepting
    /// transaction's job. The message names the field.
    pub fn validate(&self, guard: &Guard) -> Result<(), String> {
        required("merchantId", &self.merchant_id, MAX_ID_LEN)?;
        required("bizCode", &self.biz_code, MAX_BIZ_CODE_LEN)?;
        required("openId", &self.open_id, MAX_OPEN_ID_LEN)?;
        required("productCode", &self.product_code, MAX_ID_LEN)?;
        required("activityId", &self.activity_id, MAX_ID_LEN)?;
        if !self.open_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err("openId may contain only letters, digits, '_' and '-'".into());
        }
        if let Some(app_id) = self.app_id.as_deref().filter(|a| !a.is_empty()) {
            if app_id.len() > MAX_ID_LEN || !app_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err("appId must be at most 64 letters, digits or '_'".into());
            }
        }
        if let Some(url) = self.callback_url.as_deref().filter(|u| !u.is_empty()) {
            check_callback_url(url, guard)?;
        }
        Ok(())
    }
}

fn required(name: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{name} is required"));
    }
    if value.chars().count() > max {
        return Err(format!("{name} is longer than {max} characters"));
    }
    if value.chars().any(char::is_control) || value.trim() != value {
        return Err(format!("{name} must not contain control characters or surrounding spaces"));
    }
    Ok(())
}

/// A callback URL must be absolute http(s), and its host must not be an address
/// the SSRF guard refuses (a report there could never be delivered, and would
/// park for good). A host name is judged again by the notifier at connect time,
/// against the address it resolves to.
pub fn check_callback_url(url: &str, guard: &Guard) -> Result<(), String> {
    let lower = url.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
        .ok_or("callbackUrl must start with http:// or https://")?;
    if url.len() > MAX_URL_LEN {
        return Err(format!("callbackUrl is longer than {MAX_URL_LEN} characters"));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.contains('@') || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("callbackUrl must name a host and contain no spaces or credentials".into());
    }
    guard.check_host(host).map_err(|why| {
        format!(
            "callbackUrl {url} can never be delivered: {why}; reports are not sent inside our network \
             (an operator can open a range with LIJIAN_NOTIFY_ALLOW_CIDRS)"
        )
    })?;
    // A port outside the notifier's policy (LIJIAN_NOTIFY_PORTS) is refused at
    // delivery too: refuse it here, where the merchant still hears why.
    let after_host = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, rest)| rest),
        None => host.rfind(':').map_or("", |i| &host[i..]),
    };
    let port = match after_host.strip_prefix(':') {
        Some(port) => port.parse::<u16>().map_err(|_| format!("callbackUrl {url} has an invalid port"))?,
        None if lower.starts_with("https://") => 443,
        None => 80,
    };
    guard.check_port(port).map_err(|why| format!("callbackUrl {url} can never be delivered: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> OrderRequest {
        OrderRequest {
            merchant_id: "m1".into(),
            biz_code: "b1".into(),
            open_id: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
            app_id: None,
            product_code: "p1".into(),
            activity_id: "a1".into(),
            callback_url: Some("https://merchant.example/cb".into()),
            source: Source::Api,
            replay_guard: None,
        }
    }

    #[test]
    fn names_the_offending_field() {
        assert!(sample().validate(&Guard::default()).is_ok());
        let mut r = sample();
        r.biz_code = "x".repeat(65);
        assert_eq!(r.validate(&Guard::default()), Err("bizCode is longer than 64 characters".into()));
        let mut r = sample();
        r.open_id = String::new();
        assert_eq!(r.validate(&Guard::default()), Err("openId is required".into()));
        let mut r = sample();
        r.callback_url = Some("ftp://x".into());
        assert!(r.validate(&Guard::default()).is_err_and(|e| e.contains("callbackUrl")));
        let mut r = sample();
        r.callback_url = Some("http://user@host/".into());
        assert!(r.validate(&Guard::default()).is_err());
    }
}
