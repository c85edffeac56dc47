#!/usr/bin/env bash
# make-test-certs.sh DIR NAME: a throw-away CA (NAME-ca.pem), a server
# certificate for localhost and 127.0.0.1 (NAME-server.pem/.key) and a client
# certificate (NAME-client.pem/.key) signed by it. For tests only.
set -euo pipefail
dir=$1 name=$2
cd "$dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$name-ca.key" -out "$name-ca.pem" -days 2 \
  -subj "/CN=$name test CA" 2>/dev/null
for role in server client; do
  openssl req -newkey rsa:2048 -nodes -keyout "$name-$role.key" -out "$name-$role.csr" \
    -subj "/CN=$name $role" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$name-$role.ext"
  openssl x509 -req -in "$name-$role.csr" -CA "$name-ca.pem" -CAkey "$name-ca.key" \
    -CAcreateserial -out "$name-$role.pem" -days 2 -extfile "$name-$role.ext" 2>/dev/null
done
