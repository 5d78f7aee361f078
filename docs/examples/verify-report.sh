#!/usr/bin/env bash
# usage: BUSINESS_ID=… NONCE=… TIMESTAMP=… SIGN_TYPE=SHA256-RSA SIGN=… \
#        PLATFORM_PUBLIC_KEY=platform-public.pem verify-report.sh body.json
set -euo pipefail
BODY_FILE=$1
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
{ printf 'businessId=%s&nonce=%s&signType=%s&timestamp=%s' "$BUSINESS_ID" "$NONCE" "$SIGN_TYPE" "$TIMESTAMP"; cat "$BODY_FILE"; } > "$WORK/string"
printf '%s' "$SIGN" | base64 -d > "$WORK/sig"
openssl dgst -sha256 -verify "$PLATFORM_PUBLIC_KEY" -signature "$WORK/sig" "$WORK/string"
