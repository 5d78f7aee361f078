-- lijian_cancel_unreleased: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0004, changed by 0005; see those migrations for why each change was made.
--
-- Cancelling a campaign: every order not yet released becomes status 4 with its
-- refund (ledger row, balance, budget) and its report, in the caller's
-- transaction. Returns how many orders and how much money went back.
CREATE OR REPLACE FUNCTION lijian_cancel_unreleased(p_campaign text, OUT cancelled bigint, OUT refunded bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_merchant text;
    v_codes text[];
BEGIN
    SELECT c.merchant_id INTO v_merchant FROM campaigns c WHERE c.name = p_campaign;
    PERFORM 1 FROM merchants m WHERE m.merchant_id = v_merchant FOR UPDATE;
    PERFORM 1 FROM campaigns c WHERE c.name = p_campaign FOR UPDATE;
    SELECT coalesce(array_agg(o.order_code ORDER BY o.id), '{}') INTO v_codes
      FROM orders o WHERE o.campaign = p_campaign AND o.enqueued_at IS NULL AND o.status = 0;
    SELECT count(*), coalesce(sum(e.settlement_fen), 0) INTO cancelled, refunded
      FROM lijian_end_orders(v_codes, 4::smallint, 'campaign cancelled', false) e;
    UPDATE campaigns SET state = 'cancelled', updated_at = now() WHERE name = p_campaign;
END;
$$;
