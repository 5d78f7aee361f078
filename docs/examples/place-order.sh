#!/usr/bin/env bash
set -euo pipefail
GATEWAY=${GATEWAY:-http://${LIJIAN_HTTP_ADDR:-127.0.0.1:8080}}
MERCHANT_ID=${MERCHANT_ID:-m1}
BUSINESS_ID=${BUSINESS_ID:-b1}
PRIVATE_KEY=${PRIVATE_KEY:-keys/private.pem}
BIZ_CODE=${BIZ_CODE:-order-$(date +%s)}

BODY=$(printf '{"merchantId":"%s","businessId":"%s","openId":"%s","productCode":"%s","activityId":"%s","bizCode":"%s"}' \
  "$MERCHANT_ID" "$BUSINESS_ID" "${OPEN_ID:-oUpF8uMuAJO_M2pxb1Q9zNjWeS6o}" "${PRODUCT_CODE:-p1}" "${ACTIVITY_ID:-a1}" "$BIZ_CODE")
NONCE=$(cat /proc/sys/kernel/random/uuid)
TIMESTAMP=$(( $(date +%s%N) / 1000000 ))
STRING="businessId=${BUSINESS_ID}&nonce=${NONCE}&signType=SHA256-RSA&timestamp=${TIMESTAMP}${BODY}"
SIGN=$(printf '%s' "$STRING" | openssl dgst -sha256 -sign "$PRIVATE_KEY" | base64 -w0)

curl -sS -X POST "$GATEWAY/v1/openapi/order/wechat/coupons" \
  -H 'Content-Type: application/json; charset=utf-8' \
  -H "businessId: $BUSINESS_ID" -H "nonce: $NONCE" -H "timestamp: $TIMESTAMP" \
  -H 'signType: SHA256-RSA' -H "sign: $SIGN" \
  --data-binary "$BODY"
echo
