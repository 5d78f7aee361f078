-- lijian_notify_id: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0005; see those migrations for why each change was made.
--
-- The merchant de-duplicates reports by this id; one report per order.
CREATE OR REPLACE FUNCTION lijian_notify_id(p_order_code text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'N' || p_order_code $$;
