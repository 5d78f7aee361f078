-- lijian_face_mismatch: the current definition, the only one in the tree.
-- Applied after the numbered migrations by `lijian migrate` (store/functions.rs).
-- Created by 0010; see those migrations for why each change was made.
--
CREATE OR REPLACE FUNCTION lijian_face_mismatch(p_product text, p_product_face bigint, p_activity text, p_activity_face bigint)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format('product %s has face value %s yuan but activity %s issues coupons of %s yuan',
                  p_product, to_char(p_product_face / 100.0, 'FM999999999990.00'),
                  p_activity, to_char(p_activity_face / 100.0, 'FM999999999990.00'))
$$;
