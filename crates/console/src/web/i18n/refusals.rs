//! Error messages that carry values: the console's own refusals, and the
//! typed errors from below it (money, campaigns, loads) worded variant by
//! variant. A refusal that comes up only as text (a database check, a store's
//! `NotFound(String)`) has no variant to match and stays in English.

use lijian_core::money::MoneyError;
use lijian_core::vocab::UnknownWord;
use lijian_producer::campaign::{CampaignError, CampaignNameError, MAX_CAMPAIGN_NAME};

use super::Lang::{self, En, Zh};
use super::{per_sec, state_word};

pub fn bad_upload(l: Lang, why: &str) -> String {
    match l {
        En => format!("bad upload: {why}"),
        Zh => format!("上传内容有误：{why}"),
    }
}

pub fn field_too_long(l: Lang, name: &str) -> String {
    match l {
        En => format!("the field {name} is too long"),
        Zh => format!("字段 {name} 过长"),
    }
}

pub fn upload_broke_off(l: Lang, why: &str) -> String {
    match l {
        En => format!("the upload broke off: {why}"),
        Zh => format!("上传中断：{why}"),
    }
}

pub fn loading_already(l: Lang, name: &str) -> String {
    match l {
        En => format!("campaign {name} is being loaded already: wait for that load"),
        Zh => format!("发券计划 {name} 正在导入：请等这次导入结束"),
    }
}

pub fn load_failed(l: Lang, why: &str) -> String {
    match l {
        En => format!("the load failed: {why}"),
        Zh => format!("导入失败：{why}"),
    }
}

pub fn no_rejects(l: Lang, name: &str) -> String {
    match l {
        En => format!("campaign {name}'s last load refused no row"),
        Zh => format!("发券计划 {name} 的最近一次导入没有被拒绝的行"),
    }
}

pub fn no_campaign_action(l: Lang, action: &str) -> String {
    match l {
        En => format!("no campaign action {action}"),
        Zh => format!("发券计划没有 {action} 这个操作"),
    }
}

pub fn start_time_wrong(l: Lang, why: &str) -> String {
    match l {
        En => format!("start time: {why}"),
        Zh => format!("开始时间有误：{why}"),
    }
}

/// The CSV could not be read; `why` is the reader's own words (English).
pub fn csv_unreadable(l: Lang, why: &str) -> String {
    match l {
        En => format!("cannot read the CSV: {why}"),
        Zh => format!("无法读取 CSV：{why}"),
    }
}

pub fn unknown_word(l: Lang, e: &UnknownWord) -> String {
    match l {
        En => e.to_string(),
        Zh => format!("{:?} 不是有效的值（{}，可选：{}）", e.word, e.what, e.choices),
    }
}

pub fn money_wrong(l: Lang, e: &MoneyError) -> String {
    match (l, e) {
        (En, e) => e.to_string(),
        (Zh, MoneyError::NotANumber(t)) => format!("金额 {t:?} 不是以元为单位的数字（如 9.5 或 12.34）"),
        (Zh, MoneyError::TooPrecise(t)) => format!("金额 {t:?} 的小数超过两位；最小单位是 0.01 元（1 分）"),
        (Zh, MoneyError::TooLarge(t)) => format!("金额 {t:?} 过大"),
        (Zh, MoneyError::Negative(t)) => format!("金额 {t:?} 不能为负数"),
    }
}

pub fn campaign_name_wrong(l: Lang, e: &CampaignNameError) -> String {
    match (l, e) {
        (En, e) => e.to_string(),
        (Zh, CampaignNameError::Length) => format!("计划名称须为 1 到 {MAX_CAMPAIGN_NAME} 个字符"),
        (Zh, CampaignNameError::Characters) => "计划名称只能包含字母、数字及“_”“-”“.”".to_string(),
    }
}

/// A campaign refusal in `l`; a store failure or a refusal known only as
/// text is told as it comes (English).
pub fn campaign_refused(l: Lang, e: &CampaignError) -> String {
    let state = |s: &lijian_core::vocab::CampaignState| state_word(l, &s.to_string());
    match (l, e) {
        (En, e) | (Zh, e @ (CampaignError::Refused(_) | CampaignError::Store(_))) => e.to_string(),
        (Zh, CampaignError::NotFound(name)) => format!("没有发券计划 {name}"),
        (Zh, CampaignError::BadName(e)) => campaign_name_wrong(l, e),
        (Zh, CampaignError::NoMerchant(id)) => format!("没有商户 {id}"),
        (Zh, CampaignError::OtherMerchant { name, merchant }) => {
            format!("发券计划 {name} 属于商户 {merchant}：请换一个计划名称")
        }
        (Zh, CampaignError::LoadIntoCancelled(name)) => format!("发券计划 {name} 已取消：请导入到新的计划"),
        (Zh, CampaignError::OtherSchedule { name, release_at, rate }) => {
            let at = release_at.map(lijian_core::times::rfc3339_seconds).unwrap_or_else(|| "立即".into());
            let rate = rate.map(|r| per_sec(l, r)).unwrap_or_else(|| "不限速".into());
            format!("发券计划 {name} 已存在，但排期不同（释放时间：{at}；速率：{rate}）：请用相同的开始时间和速率导入，或导入到新的计划")
        }
        (Zh, CampaignError::WrongState { name, state: now, wanted }) => {
            format!("发券计划 {name} 的状态是“{}”，不是“{}”", state(now), state(wanted))
        }
        (Zh, CampaignError::AlreadyCancelled(name)) => format!("发券计划 {name} 已经取消"),
        (Zh, CampaignError::NotEmpty { name, orders }) => {
            format!("发券计划 {name} 有 {orders} 笔订单；只有空的计划可以删除（请改为取消）")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lijian_core::vocab::CampaignState;

    #[test]
    fn campaign_refusals_keep_the_clis_english_and_say_it_in_chinese() {
        let state = CampaignError::WrongState {
            name: "spring".into(),
            state: CampaignState::Paused,
            wanted: CampaignState::Active,
        };
        assert_eq!(campaign_refused(En, &state), "campaign spring is paused, not active");
        assert_eq!(campaign_refused(Zh, &state), "发券计划 spring 的状态是“已暂停”，不是“进行中”");
        let schedule = CampaignError::OtherSchedule { name: "s".into(), release_at: None, rate: Some(10) };
        assert!(campaign_refused(Zh, &schedule).contains("（释放时间：立即；速率：10 笔/秒）"));
        // Known only as text: told as it is.
        let text = CampaignError::Refused("campaign s is cancelled".into());
        assert_eq!(campaign_refused(Zh, &text), "campaign s is cancelled");
    }
}
