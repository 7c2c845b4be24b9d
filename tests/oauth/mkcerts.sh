#!/bin/sh
# mkcerts.sh DIR - a throw-away test CA and a server certificate for
# 127.0.0.1 (subjectAltName IP), made with the openssl CLI.  Nothing here is
# checked in; every test run makes fresh keys.
set -eu
d=$1
cd "$d"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout ca.key -out ca.pem -days 2 -subj /CN=oasmtp-test-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	-keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	-out server.pem -days 2 -extfile ext.cnf 2>/dev/null
