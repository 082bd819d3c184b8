#!/usr/bin/env bash
# Development certificates for a TLS cluster: a certificate authority and node certificates signed by it.
# usage: certs.sh OUT_DIR [NODE...]   (default nodes: orchestrator worker)
# Idempotent: an existing CA and existing node certificates are kept. Production clusters use their own CA.
set -euo pipefail
out=${1:?usage: certs.sh OUT_DIR [NODE...]}
shift
[ $# -gt 0 ] && nodes=("$@") || nodes=(orchestrator worker)
mkdir -p "$out"
umask 077
if [ ! -f "$out/ca.key" ] || [ ! -f "$out/ca.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=training-cluster-dev-ca" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null
  echo "certs: created the development CA $out/ca.crt"
fi
for node in "${nodes[@]}"; do
  [ -f "$out/$node.crt" ] && [ -f "$out/$node.key" ] && continue
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$node" -keyout "$out/$node.key" -out "$out/$node.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:%s\n' "$node" > "$out/$node.ext"
  openssl x509 -req -in "$out/$node.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial -days 825 \
    -extfile "$out/$node.ext" -out "$out/$node.crt" 2>/dev/null
  rm -f "$out/$node.csr" "$out/$node.ext"
  echo "certs: created $out/$node.crt (key $out/$node.key)"
done
chmod 644 "$out"/*.crt
