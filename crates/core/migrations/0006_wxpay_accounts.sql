-- lijian schema v6: WeChat Pay merchant accounts we send coupons from.
--
-- Before this, one account came from LIJIAN_WXPAY_*. Now any number live here;
-- the environment's account stays as the default for an issuer with no row.
-- Keys stay on disk: a row holds only their paths, so key material never enters
-- the database (nor a dump, nor a log of a query).
CREATE TABLE wxpay_accounts (
    mchid             text PRIMARY KEY,
    -- Serial of the merchant API certificate whose private key signs requests.
    serial_no         text NOT NULL,
    private_key_path  text NOT NULL,
    -- The WeChat Pay public key that signs answers, and its Wechatpay-Serial.
    public_key_path   text NOT NULL,
    public_key_id     text NOT NULL,
    appids            text[] NOT NULL DEFAULT '{}',
    -- Send-coupon requests per second WeChat allows this account.
    rate              integer NOT NULL DEFAULT 500 CHECK (rate > 0),
    -- NULL = LIJIAN_WXPAY_BASE_URL.
    base_url          text,
    enabled           boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The account an activity's coupons are sent from; NULL = the one whose mchid
-- is its stock_creator_mchid.
ALTER TABLE activities ADD COLUMN issuer_mchid text;

-- The account that sent the attempt (NULL for attempts before v6).
ALTER TABLE upstream_attempts ADD COLUMN mchid text;
