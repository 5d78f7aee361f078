//! Every fixed piece of interface text, in English and Chinese. The table's
//! form makes both languages compulsory: an entry with one text does not
//! compile. Texts that carry values are functions in `sentences.rs`, each an
//! exhaustive `match` on [`Lang`], so they too cannot miss a language.

use super::Lang;

macro_rules! catalogue {
    ($($name:ident: $en:literal, $zh:literal;)*) => {
        /// A fixed interface text, by name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum M { $($name,)* }

        impl M {
            #[cfg(test)]
            pub const ALL: &'static [M] = &[$(M::$name,)*];

            pub fn text(self, lang: Lang) -> &'static str {
                match self {
                    $(M::$name => match lang { Lang::En => $en, Lang::Zh => $zh },)*
                }
            }
        }
    };
}

catalogue! {
    // The shell: navigation, who is signed in, the zone, errors.
    Overview: "Overview", "概览";
    Campaigns: "Campaigns", "发券计划";
    DeadLetters: "Dead letters", "死信";
    Orders: "Orders", "订单";
    Merchants: "Merchants", "商户";
    Activities: "Activities", "活动";
    Audit: "Audit", "审计";
    SignOut: "Sign out", "退出登录";
    Admin: "admin", "管理员";
    Viewer: "viewer", "只读";
    BackToOverview: "Back to the overview", "返回概览";
    Cancel: "Cancel", "取消";
    NoSuchPage: "no such page", "没有这个页面";
    LiveRefresh: "This page refreshes itself every 5 s.", "本页每 5 秒自动刷新。";
    // Page links under long lists.
    PreviousPage: "← Previous", "← 上一页";
    NextPage: "Next →", "下一页 →";
    // Sign-in.
    ConsoleName: "lijian console", "lijian 控制台";
    SignInTitle: "Sign in", "登录";
    OperatorName: "Operator name", "操作员名称";
    Password: "Password", "密码";
    SignIn: "Sign in", "登录";
    WrongPassword: "wrong name or password", "名称或密码错误";
    FormExpired: "the sign-in form expired or was not sent from this console: try again",
        "登录表单已过期，或不是从本控制台提交的：请重试";
    CsrfWrong: "this form's CSRF token is missing or wrong: reload the page and try again",
        "表单的 CSRF 令牌缺失或错误：请刷新页面后重试";
    // Words used on many pages.
    Campaign: "campaign", "计划";
    Merchant: "merchant", "商户";
    State: "state", "状态";
    Status: "status", "状态";
    Reason: "reason", "原因";
    OrdersCol: "orders", "订单数";
    Order: "order", "订单";
    At: "at", "时间";
    Kind: "kind", "类型";
    Detail: "detail", "详情";
    Released: "released", "已释放";
    FinalOrders: "final orders", "已完结订单";
    Final: "final", "已完结";
    Disabled: "disabled", "已停用";
    Enabled: "enabled", "已启用";
    Yes: "yes", "是";
    AsLoaded: "as loaded", "随导入释放";
    All: "all", "全部";
    // Overview.
    AcceptedLastHour: "accepted, last hour", "近一小时受理";
    IssuedLastHour: "issued, last hour", "近一小时发券成功";
    FailedLastHour: "failed, last hour", "近一小时失败";
    DeliveredLastHour: "reports delivered, last hour", "近一小时通知送达";
    ChartTitle: "Orders per minute, last hour", "近一小时每分钟订单数";
    SeriesAccepted: "accepted", "受理";
    SeriesIssued: "issued", "发券成功";
    SeriesFailed: "failed", "失败";
    SeriesDelivered: "reports delivered", "通知送达";
    Now: "now", "现在";
    Queues: "Queues", "队列";
    Queue: "queue", "队列";
    Messages: "messages", "消息数";
    NotReachable: "not reachable", "无法连接";
    CampaignsRunning: "Campaigns running", "进行中的发券计划";
    NoneRunning: "None: every campaign is finished, cancelled or empty.", "无：所有计划均已完成、已取消或为空。";
    SendRates: "Send rate per WeChat Pay account", "各微信支付商户号的发送速率";
    Account: "account", "商户号";
    SendsPerSec: "sends/s (last 10 s)", "每秒发送（近 10 秒）";
    Limit: "limit", "上限";
    StoredAccount: "stored account", "已登记商户号";
    DefaultAccount: "the consumers' LIJIAN_WXPAY_* default (limit: LIJIAN_WXPAY_RATE)", "发券服务的 LIJIAN_WXPAY_* 默认账户（上限为 LIJIAN_WXPAY_RATE）";
    UnknownAccount: "not stored, not the default: limit unknown", "未登记、也不是默认账户：上限未知";
    MoreRunning: "More are running: all campaigns", "还有更多进行中的计划：查看全部计划";
    NoAccounts: "No WeChat Pay account stored and none sending.", "没有已登记的微信支付商户号，也没有正在发送的。";
    // Campaigns.
    NoCampaigns: "No campaigns yet: `lijian load FILE.csv …` creates one.", "还没有发券计划：`lijian load FILE.csv …` 会创建一个。";
    Release: "release", "释放";
    ReleaseLabel: "Release: ", "释放：";
    OrdersFinal: "orders final", "笔订单已完结";
    EtaUnknown: "unknown (nothing finishing now)", "未知（当前没有订单完结）";
    PauseAsk: "Pause…", "暂停…";
    ResumeAsk: "Resume…", "恢复…";
    CancelAsk: "Cancel…", "取消…";
    Pause: "Pause", "暂停";
    Resume: "Resume", "恢复";
    CancelCampaign: "Cancel the campaign", "取消该计划";
    OrdersByStatus: "Orders by status", "按状态统计订单";
    FailuresByReason: "Failures by reason", "按原因统计失败";
    BackToCampaign: "Back to the campaign", "返回发券计划";
    // A campaign's rate chart and last load.
    NothingReleased: "Nothing released yet: no rate to draw.", "尚未释放任何订单：没有速率可画。";
    RateHeading: "Release and issue rate", "释放与发券速率";
    SeriesReleasedOrders: "released", "已释放";
    LastLoad: "Last load", "最近一次导入";
    NoLoad: "No load recorded.", "没有导入记录。";
    DownloadRejects: "Download the rejects file", "下载被拒行文件";
    RejectsColumns: " (line, reason, the row as uploaded)", "（行号、原因、上传时的原行）";
    NoRejects: "No rejected rows in the last load.", "最近一次导入没有被拒绝的行。";
    // The upload form.
    UploadHeading: "Upload a campaign", "上传发券计划";
    UploadFile: "CSV file", "CSV 文件";
    UploadMerchant: "Merchant id", "商户 ID";
    UploadActivity: "Activity id (for rows without one)", "活动 ID（用于未填写的行）";
    UploadProduct: "Product code (for rows without one)", "商品编码（用于未填写的行）";
    UploadCampaign: "Campaign name (default: the file's name)", "计划名称（默认为文件名）";
    UploadAt: "Start time (optional, RFC 3339 or now+10m)", "开始时间（可选，RFC 3339 或 now+10m）";
    UploadRate: "Orders per second (optional)", "每秒订单数（可选）";
    UploadSubmit: "Upload and load", "上传并导入";
    UploadHint: "The same load as lijian load: bad rows go to the rejects file, loading it again adds nothing twice. The page waits until the load is done.",
        "与 lijian load 相同的导入：有误的行写入被拒行文件，再次导入同一文件不会重复添加。页面会等到导入完成。";
    UploadLoading: "Loading now", "正在导入";
    // Dead letters.
    NothingParked: "Nothing is parked.", "没有搁置的任务。";
    Jobs: "jobs", "任务数";
    Oldest: "oldest", "最早";
    ReplayAll: "Replay all…", "全部重放…";
    FailAll: "Fail all…", "全部置为失败…";
    Attempts: "attempts", "尝试次数";
    ParkedAt: "parked at", "搁置时间";
    ReplaySelected: "Replay selected…", "重放所选…";
    FailSelected: "Fail selected…", "所选置为失败…";
    ReplayTitle: "Replay parked jobs", "重放搁置的任务";
    FailTitle: "Fail parked jobs", "将搁置的任务置为失败";
    Replay: "Replay", "重放";
    FailThem: "Fail them", "置为失败";
    Replayed: "Replayed", "已重放";
    Failed: "Failed", "已置为失败";
    BackToDlq: "Back to dead letters", "返回死信";
    LaneIssue: "issue", "发券";
    LaneNotify: "notify", "通知";
    // Orders.
    OrderCode: "Order code", "订单号";
    Show: "Show", "查看";
    MerchantLabel: "Merchant", "商户";
    Find: "Find", "查找";
    Coupon: "coupon", "券";
    Charged: "charged", "扣款";
    WxpayAttempts: "WeChat Pay attempts", "微信支付调用次数";
    ReplayOne: "Replay…", "重放…";
    FailRefund: "Fail and refund…", "置为失败并退款…";
    Timeline: "Timeline", "时间线";
    What: "what", "事件";
    TimelineWords: "Events are worded as `lijian order show` prints them.", "事件按 `lijian order show` 的原文显示。";
    // Merchants.
    MerchantId: "merchant", "商户号";
    Name: "name", "名称";
    BalanceYuan: "balance (yuan)", "余额（元）";
    Balance: "balance", "余额";
    Business: "business", "业务 ID";
    TopupYuan: "Top up (yuan)", "充值（元）";
    Note: "Note", "备注";
    NoteHint: "why, e.g. invoice number", "原因，如发票号";
    TopUp: "Top up", "充值";
    ToppedUp: "Topped up", "已充值";
    RecentLedger: "Recent ledger entries", "最近流水";
    OlderLedger: "Older ledger entries", "更早的流水";
    Amount: "amount", "金额";
    BalanceAfter: "balance after", "变动后余额";
    BackToMerchant: "Back to the merchant", "返回商户";
    // Activities.
    Activity: "activity", "活动";
    BudgetUsed: "budget used", "预算已用";
    Window: "window", "有效期";
    SendsFrom: "sends from", "发券商户号";
    Stock: "stock", "批次";
    Used: "used", "已用";
    NotStarted: "not started", "未开始";
    Ended: "ended", "已结束";
    AccountDisabled: "stored account disabled: its jobs park", "已登记商户号已停用：其任务会被搁置";
    NoStoredAccount: "no stored account: the consumer's LIJIAN_WXPAY_* default",
        "未登记商户号：使用发券服务的 LIJIAN_WXPAY_* 默认账户";
    // Audit.
    AuditLog: "Audit log", "审计日志";
    Actor: "Actor", "操作人";
    ActorHint: "name or cli:user", "名称或 cli:用户";
    Action: "Action", "操作";
    Any: "any", "全部";
    Filter: "Filter", "筛选";
    Who: "who", "操作人";
    ActionCol: "action", "操作";
    Target: "target", "对象";
    Count: "count", "数量";
    Older: "Older entries", "更早的记录";
    // Refusals (those with values are in `refusals.rs`).
    TokenNeeded: "send Authorization: Bearer <token> (lijian operator token --name NAME)",
        "请发送 Authorization: Bearer <令牌>（令牌由 lijian operator token --name NAME 生成）";
    UploadNoFile: "no file: send the CSV as the field `file`, after the other fields",
        "没有文件：请把 CSV 作为 `file` 字段发送，放在其他字段之后";
    MerchantIdRequired: "merchant_id is required", "必须填写商户 ID（merchant_id）";
    RateWhole: "rate must be a whole number, at least 1", "每秒订单数（rate）必须是不小于 1 的整数";
    CsvNoHeader: "cannot read the CSV: the file is empty (a header row is required)",
        "无法读取 CSV：文件是空的（第一行必须是表头）";
    NoneParked: "none of these jobs is parked any more", "这些任务都已不在搁置中";
    SayLane: "say which kind: lane=issue or lane=notify", "请指明类型：lane=issue 或 lane=notify";
    SelectJobs: "select at least one job (order=…), or a whole reason (reason=…)",
        "请至少选择一个任务（order=…），或选择一整个原因（reason=…）";
    GiveCodeOrBiz: "give code, or merchant and biz", "请提供 code，或同时提供 merchant 和 biz";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_both_languages() {
        for m in M::ALL {
            for lang in Lang::ALL {
                assert!(!m.text(lang).trim().is_empty(), "{m:?} in {lang:?}");
            }
            // The Chinese text is Chinese (or, for a word kept as is, the same).
            let zh = m.text(Lang::Zh);
            assert!(zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{m:?}: {zh}");
        }
    }
}
