-- Price rules (issue 12, point 3). Products are a global catalogue; nothing tied
-- a product to the activity, so a merchant could order a 100-yuan coupon at the
-- price of a 1-yuan product. Every door now refuses an order whose product's
-- face value differs from its activity's coupon amount: status 3 (bad
-- parameter) naming both values; nothing is stored, charged or queued.
-- The two accepting functions are those of 0001 and 0004 with that one check
-- added after the activity is found.

-- (lijian_face_mismatch: its current definition is functions/lijian_face_mismatch.sql)

-- (lijian_accept_order: its current definition is functions/lijian_accept_order.sql)

-- (lijian_accept_batch: its current definition is functions/lijian_accept_batch.sql)
