-- lijian_accept_order: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0001, changed by 0010, 0012; see those migrations for why each change was made.
--
-- The accepting step shared by every door (open API, CSV, schedules): checks the
-- catalogue, charges the balance, counts the budget and stores the order, in one
-- round trip. Returns the open API status code: 0 accepted, 6 nonce reused, 7 not found,
-- 8 duplicate bizCode (with the existing order), 98 bizCode reused for a
-- different order (with the existing order), 9 insufficient balance,
-- 11 out of stock (budget used up or outside the activity window).
--
-- Lock order is merchant row, then activity row; callers that batch several calls
-- in one transaction sort them by (merchant_id, activity_id) so concurrent batches
-- take locks in one global order and cannot deadlock.
CREATE OR REPLACE FUNCTION lijian_accept_order(
    p_merchant_id text, p_biz_code text, p_open_id text, p_app_id text,
    p_product_code text, p_activity_id text, p_callback_url text, p_source text,
    p_business_id text, p_nonce text,
    OUT status integer, OUT detail text, OUT order_code text, OUT settlement_fen bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_price bigint;
    v_face bigint;
    v_activity activities%ROWTYPE;
    v_balance bigint;
    v_id bigint;
    v_same boolean;
BEGIN
    -- The open API's replay guard rides in the same transaction: one commit per
    -- batch instead of one more per request. Doors without a nonce pass NULL.
    IF p_nonce IS NOT NULL THEN
        INSERT INTO used_nonces (business_id, nonce) VALUES (p_business_id, p_nonce) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            status := 6; detail := 'nonce already used; send a new random nonce with every request'; RETURN;
        END IF;
    END IF;

    SELECT o.order_code, o.settlement_fen,
           o.open_id = p_open_id AND o.activity_id = p_activity_id AND o.product_code = p_product_code
      INTO order_code, settlement_fen, v_same
      FROM orders o WHERE o.merchant_id = p_merchant_id AND o.biz_code = p_biz_code;
    IF FOUND THEN
        status := CASE WHEN v_same THEN 8 ELSE 98 END;
        detail := CASE WHEN v_same THEN 'duplicate bizCode'
                  ELSE 'bizCode already used by an order with a different openId, activityId or productCode' END;
        RETURN;
    END IF;

    SELECT price_fen, face_value_fen INTO v_price, v_face FROM products WHERE product_code = p_product_code;
    IF NOT FOUND THEN
        status := 7; detail := 'product not found'; RETURN;
    END IF;
    SELECT * INTO v_activity FROM activities WHERE activity_id = p_activity_id;
    IF NOT FOUND OR v_activity.merchant_id <> p_merchant_id THEN
        status := 7; detail := 'activity not found'; RETURN;
    END IF;
    IF v_face <> v_activity.face_value_fen THEN
        status := 3;
        detail := lijian_face_mismatch(p_product_code, v_face, p_activity_id, v_activity.face_value_fen);
        RETURN;
    END IF;
    IF NOT v_activity.enabled THEN
        status := 11; detail := 'activity is disabled'; RETURN;
    END IF;
    IF now() < v_activity.starts_at THEN
        status := 11; detail := 'activity has not started'; RETURN;
    END IF;
    IF now() >= v_activity.ends_at THEN
        status := 11; detail := 'activity has ended'; RETURN;
    END IF;

    UPDATE merchants SET balance_fen = balance_fen - v_price
     WHERE merchant_id = p_merchant_id AND balance_fen >= v_price
     RETURNING balance_fen INTO v_balance;
    IF NOT FOUND THEN
        status := 9; detail := 'insufficient balance'; RETURN;
    END IF;

    UPDATE activities SET issued = issued + 1
     WHERE activity_id = p_activity_id AND issued < budget;
    IF NOT FOUND THEN
        UPDATE merchants SET balance_fen = balance_fen + v_price WHERE merchant_id = p_merchant_id;
        status := 11; detail := 'activity budget used up'; RETURN;
    END IF;

    v_id := nextval('orders_id_seq');
    order_code := 'LJ' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') || lpad(v_id::text, 12, '0');
    INSERT INTO orders (id, order_code, merchant_id, biz_code, open_id, app_id, product_code,
                        activity_id, callback_url, settlement_fen, source)
    VALUES (v_id, order_code, p_merchant_id, p_biz_code, p_open_id,
            coalesce(nullif(p_app_id, ''), v_activity.appid), p_product_code, p_activity_id,
            nullif(p_callback_url, ''), v_price, p_source)
    ON CONFLICT (merchant_id, biz_code) DO NOTHING;
    IF NOT FOUND THEN
        -- A concurrent request with the same bizCode committed first: undo our
        -- charge and answer with its order.
        UPDATE merchants SET balance_fen = balance_fen + v_price WHERE merchant_id = p_merchant_id;
        UPDATE activities SET issued = issued - 1 WHERE activity_id = p_activity_id;
        SELECT o.order_code, o.settlement_fen,
               o.open_id = p_open_id AND o.activity_id = p_activity_id AND o.product_code = p_product_code
          INTO order_code, settlement_fen, v_same
          FROM orders o WHERE o.merchant_id = p_merchant_id AND o.biz_code = p_biz_code;
        status := CASE WHEN v_same THEN 8 ELSE 98 END;
        detail := CASE WHEN v_same THEN 'duplicate bizCode'
                  ELSE 'bizCode already used by an order with a different openId, activityId or productCode' END;
        RETURN;
    END IF;

    INSERT INTO balance_ledger (merchant_id, order_code, kind, amount_fen, balance_after_fen)
    VALUES (p_merchant_id, order_code, 'debit', -v_price, v_balance);
    settlement_fen := v_price;
    status := 0; detail := 'accepted';
END;
$$;
