//! Interface texts that carry values: one function each, an exhaustive match
//! on [`Lang`] (a missing language does not compile). Money is yuan with two
//! decimals ([`Fen`]'s `Display`); counts are plain numbers.

use lijian_core::money::Fen;
use lijian_core::status::OrderStatus;

use super::Lang::{self, En, Zh};

/// An order status in operators' words.
pub fn status_word(l: Lang, s: OrderStatus) -> &'static str {
    match (l, s) {
        (En, s) => s.operator_word(),
        (Zh, OrderStatus::Stored) => "已受理",
        (Zh, OrderStatus::Processing) => "处理中",
        (Zh, OrderStatus::Success) => "已发券",
        (Zh, OrderStatus::Failed) => "失败",
        (Zh, OrderStatus::Cancelled) => "已取消",
    }
}

/// A status by its code (unknown codes as the number).
pub fn status_code_word(l: Lang, code: i16) -> String {
    match OrderStatus::try_from(code) {
        Ok(s) => status_word(l, s).to_string(),
        Err(_) => code.to_string(),
    }
}

/// A campaign's state as shown (active, paused, cancelled, finished, empty).
pub fn state_word(l: Lang, state: &str) -> String {
    let zh = match state {
        "active" => "进行中",
        "paused" => "已暂停",
        "cancelled" => "已取消",
        "finished" => "已完成",
        "empty" => "空",
        other => other,
    };
    match l {
        En => state.to_string(),
        Zh => zh.to_string(),
    }
}

/// A ledger row's kind.
pub fn ledger_word(l: Lang, kind: &str) -> String {
    let zh = match kind {
        "opening" => "开户余额",
        "topup" => "充值",
        "debit" => "扣款",
        "refund" => "退款",
        "late_charge" => "补扣",
        other => other,
    };
    match l {
        En => kind.to_string(),
        Zh => zh.to_string(),
    }
}

/// Seconds as an operator reads them: "45 s", "12 min", "3.0 h", "2.0 d".
pub fn duration_words(l: Lang, secs: f64) -> String {
    let secs = secs.max(0.0);
    let (value, en, zh) = match secs {
        s if s < 90.0 => (format!("{s:.0}"), "s", "秒"),
        s if s < 90.0 * 60.0 => (format!("{:.0}", s / 60.0), "min", "分钟"),
        s if s < 48.0 * 3600.0 => (format!("{:.1}", s / 3600.0), "h", "小时"),
        s => (format!("{:.1}", s / 86400.0), "d", "天"),
    };
    match l {
        En => format!("{value} {en}"),
        Zh => format!("{value} {zh}"),
    }
}

pub fn ago(l: Lang, duration: &str) -> String {
    match l {
        En => format!("{duration} ago"),
        Zh => format!("{duration}前"),
    }
}

pub fn minutes_ago(l: Lang, minutes: i64) -> String {
    match l {
        En => format!("−{minutes} min"),
        Zh => format!("−{minutes} 分钟"),
    }
}

/// The rate chart's title, its note and a step's label.
pub fn rate_chart_title(l: Lang, minutes: i64) -> String {
    match l {
        En => format!("Orders released and issued per {minutes} min"),
        Zh => format!("每 {minutes} 分钟释放与发券的订单数"),
    }
}

pub fn rate_chart_note(l: Lang, minutes: i64, since: &str) -> String {
    match l {
        En => format!("Orders per {minutes} min from {since} (UTC)."),
        Zh => format!("自 {since}（UTC）起，每 {minutes} 分钟的订单数。"),
    }
}

pub fn minutes_after(l: Lang, minutes: i64) -> String {
    match l {
        En => format!("+{minutes} min"),
        Zh => format!("+{minutes} 分钟"),
    }
}

/// After the load's time (shown in the operator's zone): who, and what it did.
pub fn last_load_by(l: Lang, by: &str, detail: &str) -> String {
    match l {
        En => format!(" by {by}: {detail}"),
        Zh => format!("，{by}：{detail}"),
    }
}

/// A running upload: who, since when, how far (`of` is the total, if known).
pub fn upload_read(l: Lang, file: &str, by: &str, since: &str, read_mb: f64, of_mb: Option<f64>) -> String {
    let of = |word: &str| of_mb.map(|t| format!("{word}{t:.1} MB")).unwrap_or_default();
    match l {
        En => format!("{file} by {by} since {since} · {read_mb:.1} MB{} read", of(" of ")),
        Zh => format!("{file}，{by}，始于 {since} · 已读 {read_mb:.1} MB{}", of(" / ")),
    }
}

pub fn upload_rows(l: Lang, rows: u64, accepted: u64, duplicates: u64, rejected: u64) -> String {
    match l {
        En => format!("{rows} rows read · {accepted} accepted · {duplicates} duplicates · {rejected} rejected"),
        Zh => format!("已读 {rows} 行 · 接受 {accepted} · 重复 {duplicates} · 拒绝 {rejected}"),
    }
}

pub fn parked_card(l: Lang, issue: i64, notify: i64) -> String {
    match l {
        En => format!("parked ({issue} issue, {notify} reports)"),
        Zh => format!("已搁置（发券 {issue}，通知 {notify}）"),
    }
}

pub fn per_minute_since(l: Lang) -> &'static str {
    match l {
        En => "Per minute since",
        Zh => "每分钟统计，起始于",
    }
}

pub fn as_of(l: Lang) -> &'static str {
    match l {
        En => "As of",
        Zh => "截至",
    }
}

pub fn times_in_zone(l: Lang, zone: &str) -> String {
    match l {
        En => format!("Times in {zone}; hover over one for UTC."),
        Zh => format!("时间为 {zone} 时区；鼠标悬停可看 UTC 时间。"),
    }
}

pub fn per_sec(l: Lang, rate: impl std::fmt::Display) -> String {
    match l {
        En => format!("{rate}/s"),
        Zh => format!("{rate} 笔/秒"),
    }
}

/// Calls per second (WeChat Pay requests, not orders).
pub fn calls_per_sec(l: Lang, rate: impl std::fmt::Display) -> String {
    match l {
        En => format!("{rate}/s"),
        Zh => format!("{rate} 次/秒"),
    }
}

pub fn at_rate(l: Lang, rate: i32) -> String {
    match l {
        En => format!(" at {rate} orders/s"),
        Zh => format!("，每秒 {rate} 笔"),
    }
}

pub fn campaign_title(l: Lang, name: &str) -> String {
    match l {
        En => format!("Campaign {name}"),
        Zh => format!("发券计划 {name}"),
    }
}

/// What follows the release time on a campaign's page.
pub fn release_rest(l: Lang, rate: Option<i32>, finishing: f64, eta: &str) -> String {
    let rate = rate.map(|r| at_rate(l, r)).unwrap_or_default();
    match l {
        En => format!("{rate} · finishing {finishing:.1} orders/s (last 10 s) · ETA {eta}"),
        Zh => format!("{rate} · 完结速度 {finishing:.1} 笔/秒（近 10 秒）· 预计还需 {eta}"),
    }
}

pub fn money_line(
    l: Lang,
    unreleased: i64,
    unreleased_money: Fen,
    parked: i64,
    charged: &str,
    refunded: &str,
) -> String {
    match l {
        En => format!(
            "Unreleased: {unreleased} orders, ¥{unreleased_money} · parked: {parked} · charged ¥{charged} · refunded ¥{refunded}"
        ),
        Zh => format!("未释放：{unreleased} 笔，¥{unreleased_money} · 搁置：{parked} · 已扣款 ¥{charged} · 已退款 ¥{refunded}"),
    }
}

pub fn pause_question(l: Lang, name: &str, orders: i64, money: Fen) -> String {
    match l {
        En => format!(
            "Pause campaign {name}? Its {orders} unreleased orders ({money} yuan) wait until it is resumed; orders already released are still issued."
        ),
        Zh => format!("暂停发券计划 {name}？其 {orders} 笔未释放订单（{money} 元）将等到恢复后再释放；已释放的订单照常发券。"),
    }
}

pub fn resume_question(l: Lang, name: &str, orders: i64, money: Fen, rate: Option<i32>) -> String {
    let rate = rate.map(|r| at_rate(l, r)).unwrap_or_default();
    match l {
        En => format!(
            "Resume campaign {name}? Its {orders} unreleased orders ({money} yuan) are released from now{rate}."
        ),
        Zh => format!("恢复发券计划 {name}？其 {orders} 笔未释放订单（{money} 元）从现在开始释放{rate}。"),
    }
}

pub fn cancel_question(l: Lang, name: &str, orders: i64, money: Fen, merchant: &str) -> String {
    match l {
        En => format!(
            "Cancel campaign {name}? Its {orders} unreleased orders end as cancelled (status 4) and {money} yuan goes back to merchant {merchant}. This cannot be undone."
        ),
        Zh => format!(
            "取消发券计划 {name}？其 {orders} 笔未释放订单将以“已取消”（状态 4）结束，{money} 元退回商户 {merchant}。此操作无法撤销。"
        ),
    }
}

pub fn action_title(l: Lang, button: &str, name: &str) -> String {
    match l {
        En => format!("{button} {name}"),
        Zh => format!("{button}：{name}"),
    }
}

pub fn paused_done(l: Lang, orders: i64) -> String {
    match l {
        En => format!("Paused: {orders} unreleased orders wait."),
        Zh => format!("已暂停：{orders} 笔未释放订单在等待。"),
    }
}

pub fn resumed_done(l: Lang, orders: i64) -> String {
    match l {
        En => format!("Resumed: {orders} unreleased orders are released from now."),
        Zh => format!("已恢复：{orders} 笔未释放订单从现在开始释放。"),
    }
}

pub fn cancelled_done(l: Lang, orders: i64, refunded: &str) -> String {
    match l {
        En => format!("Cancelled: {orders} orders, {refunded} yuan refunded."),
        Zh => format!("已取消：{orders} 笔订单，退款 {refunded} 元。"),
    }
}

pub fn lane_word(l: Lang, lane: lijian_core::queue::Lane) -> &'static str {
    use super::M;
    match lane.to_string().as_str() {
        "issue" => l.t(M::LaneIssue),
        _ => l.t(M::LaneNotify),
    }
}

pub fn group_heading(l: Lang, lane: &str, reason: &str) -> String {
    match l {
        En => format!("{lane} jobs parked for: {reason}"),
        Zh => format!("因以下原因搁置的{lane}任务：{reason}"),
    }
}

pub fn group_note(l: Lang, total: usize, shown: usize) -> String {
    match (l, total > shown) {
        (En, false) => format!("{total} jobs; attempts since the last replay / in all."),
        (En, true) => {
            format!("{total} jobs, {shown} shown here, oldest first; attempts since the last replay / in all.")
        }
        (Zh, false) => format!("共 {total} 个任务；尝试次数为上次重放以来 / 总计。"),
        (Zh, true) => format!("共 {total} 个任务，本页显示 {shown} 个（最早的在前）；尝试次数为上次重放以来 / 总计。"),
    }
}

/// Where a page of a long list is.
pub fn page_number(l: Lang, page: i64) -> String {
    match l {
        En => format!("page {page}"),
        Zh => format!("第 {page} 页"),
    }
}

pub fn select_label(l: Lang, code: &str) -> String {
    match l {
        En => format!("select {code}"),
        Zh => format!("选择 {code}"),
    }
}

pub fn replay_question(l: Lang, issue: usize, reports: usize) -> String {
    match l {
        En => format!(
            "Replay {issue} parked issue jobs and {reports} parked reports? Each goes back with a fresh retry budget; no order gets a second coupon or a second charge."
        ),
        Zh => format!("重放 {issue} 个搁置的发券任务和 {reports} 个搁置的通知？每个都以全新的重试次数重新排队；不会有订单被重复发券或重复扣款。"),
    }
}

pub fn fail_question(l: Lang, issue: usize, reports: usize) -> String {
    match l {
        En => format!(
            "Fail {issue} orders (status 3, their price refunded, a report sent) and dismiss {reports} parked reports? This cannot be undone. An order whose last WeChat Pay call left the outcome unknown stays parked."
        ),
        Zh => format!(
            "将 {issue} 笔订单置为失败（状态 3，退还扣款，发送通知），并放弃 {reports} 个搁置的通知？此操作无法撤销。最后一次微信支付调用结果未知的订单会继续搁置。"
        ),
    }
}

pub fn replayed_done(l: Lang, issue: usize, reports: usize) -> String {
    match l {
        En => format!("Replayed {issue} issue jobs and {reports} reports."),
        Zh => format!("已重放 {issue} 个发券任务和 {reports} 个通知。"),
    }
}

pub fn failed_done(l: Lang, failed: usize, dismissed: usize) -> String {
    match l {
        En => format!("Failed {failed} orders (refunded, reports queued); dismissed {dismissed} reports."),
        Zh => format!("已将 {failed} 笔订单置为失败（已退款，通知已排队）；已放弃 {dismissed} 个通知。"),
    }
}

pub fn left_parked(l: Lang, code: &str, why: &str) -> String {
    match l {
        En => format!(
            "Left parked: {code}: the outcome of its last WeChat Pay call is unknown ({why}). Replay it to learn the truth."
        ),
        Zh => format!("仍搁置：{code}：其最后一次微信支付调用的结果未知（{why}）。重放它以确认结果。"),
    }
}

pub fn order_title(l: Lang, code: &str) -> String {
    match l {
        En => format!("Order {code}"),
        Zh => format!("订单 {code}"),
    }
}

pub fn no_order(l: Lang, code: &str) -> String {
    match l {
        En => format!("no order {code}"),
        Zh => format!("没有订单 {code}"),
    }
}

pub fn no_order_biz(l: Lang, merchant: &str, biz: &str) -> String {
    match l {
        En => format!("no order of merchant {merchant} with bizCode {biz}"),
        Zh => format!("商户 {merchant} 没有 bizCode 为 {biz} 的订单"),
    }
}

pub fn parked_because(l: Lang, reason: &str) -> String {
    match l {
        En => format!("Parked: {reason}"),
        Zh => format!("已搁置：{reason}"),
    }
}

pub fn merchant_title(l: Lang, id: &str) -> String {
    match l {
        En => format!("Merchant {id}"),
        Zh => format!("商户 {id}"),
    }
}

pub fn orders_with_status(l: Lang, code: i16) -> String {
    let word = status_code_word(l, code);
    match l {
        En => format!("orders {word} (status {code})"),
        Zh => format!("{word}订单（状态 {code}）"),
    }
}

pub fn topped_up(l: Lang, amount: Fen, merchant: &str, balance: Fen) -> String {
    match l {
        En => format!("Added ¥{amount} to {merchant}; balance now ¥{balance}."),
        Zh => format!("已为 {merchant} 充值 ¥{amount}；当前余额 ¥{balance}。"),
    }
}

pub fn face_off(l: Lang, face: Fen) -> String {
    match l {
        En => format!("¥{face} off"),
        Zh => format!("立减 ¥{face}"),
    }
}

pub fn left_count(l: Lang, n: i64) -> String {
    match l {
        En => format!("{n} left"),
        Zh => format!("剩余 {n}"),
    }
}

pub fn stored_account_rate(l: Lang, rate: i32) -> String {
    match l {
        En => format!("stored account, {rate}/s"),
        Zh => format!("已登记商户号，每秒 {rate} 次"),
    }
}

pub fn viewer_refused(l: Lang, name: &str) -> String {
    match l {
        En => format!("{name} is a viewer: viewers see everything and change nothing"),
        Zh => format!("{name} 是只读操作员：只读操作员可以查看一切，但不能做任何更改"),
    }
}

pub fn too_many_sign_ins(l: Lang, minutes: u64) -> String {
    match l {
        En => format!("too many failed sign-ins: try again in {minutes} minutes"),
        Zh => format!("登录失败次数过多：请 {minutes} 分钟后再试"),
    }
}

/// An error page's title.
pub fn status_title(l: Lang, status: axum::http::StatusCode) -> String {
    let en = status.canonical_reason().unwrap_or("Error");
    let zh = match status.as_u16() {
        400 => "请求有误",
        401 => "未登录",
        403 => "禁止操作",
        404 => "未找到",
        409 => "冲突",
        429 => "请求过多",
        _ => "出错了",
    };
    match l {
        En => en.to_string(),
        Zh => zh.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_the_unit_that_fits() {
        assert_eq!(duration_words(En, 42.0), "42 s");
        assert_eq!(duration_words(En, 600.0), "10 min");
        assert_eq!(duration_words(En, 3.0 * 3600.0), "3.0 h");
        assert_eq!(duration_words(Zh, 3.0 * 86400.0), "3.0 天");
    }

    #[test]
    fn money_reads_in_yuan_with_two_decimals_in_both_languages() {
        assert!(pause_question(En, "s", 3, Fen(2850)).contains("(28.50 yuan)"));
        assert!(pause_question(Zh, "s", 3, Fen(2850)).contains("（28.50 元）"));
        assert_eq!(topped_up(Zh, Fen(100), "m1", Fen(1_000_050)), "已为 m1 充值 ¥1.00；当前余额 ¥10000.50。");
    }
}
