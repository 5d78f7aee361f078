-- lijian_late_notify_id: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0011; see those migrations for why each change was made.
--
-- The corrected report's id: the merchant de-duplicates on notifyId, so a
-- correction under the first report's id would be thrown away.
CREATE OR REPLACE FUNCTION lijian_late_notify_id(p_order_code text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT lijian_notify_id(p_order_code) || '-late' $$;
