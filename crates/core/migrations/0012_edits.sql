-- Day-two edits (issue 14, point 4).
--
-- Merchant keys: a merchant may hold several request keys at once, so a new key
-- can be added beside the old and the old retired once the merchant switched
-- (`lijian merchant key add/retire/list`). The gateway accepts a request signed
-- with any live key of the signType; a status report to a merchant that signs
-- with MD5 only is signed with its newest live MD5 key. The single key columns
-- of 0001 move here and go, so there is one place a key lives.
CREATE TABLE merchant_keys (
    key_id       bigserial PRIMARY KEY,
    merchant_id  text NOT NULL REFERENCES merchants,
    sign_type    text NOT NULL CHECK (sign_type IN ('SHA256-RSA', 'MD5')),
    -- The RSA public key as handed in (PEM or Base64 DER), or the MD5 shared secret.
    key_text     text NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT now(),
    -- Set by `merchant key retire`: requests signed with it are refused from then on.
    retired_at   timestamptz
);
CREATE INDEX merchant_keys_live ON merchant_keys (merchant_id, key_id) WHERE retired_at IS NULL;

INSERT INTO merchant_keys (merchant_id, sign_type, key_text, added_at)
SELECT merchant_id, 'SHA256-RSA', rsa_public_key, created_at FROM merchants WHERE rsa_public_key IS NOT NULL
ORDER BY created_at, merchant_id;
INSERT INTO merchant_keys (merchant_id, sign_type, key_text, added_at)
SELECT merchant_id, 'MD5', md5_key, created_at FROM merchants WHERE md5_key IS NOT NULL
ORDER BY created_at, merchant_id;
ALTER TABLE merchants DROP COLUMN rsa_public_key, DROP COLUMN md5_key;

-- An activity can be switched off (`lijian activity set --disable`): new orders
-- for it are refused with status 11 'activity is disabled' at every door, like
-- an ended one; orders already accepted (paid for, budget counted) still issue.
-- The two accepting functions are those of 0010 with that one check added
-- after the face-value check.
ALTER TABLE activities ADD COLUMN enabled boolean NOT NULL DEFAULT true;

-- (lijian_accept_order: its current definition is functions/lijian_accept_order.sql)

-- (lijian_accept_batch: its current definition is functions/lijian_accept_batch.sql)
