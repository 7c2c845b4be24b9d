"""Test certificates made with the openssl command line tool.

    from certs import make_certs
    paths = make_certs("/tmp/somedir")

returns a dict of file paths (all PEM):
    ca            test CA certificate (use as tls_trust_file)
    ca_key        its key
    cert, key     server certificate for 127.0.0.1, ::1 and localhost, signed by ca
    chain         cert followed by ca (a full chain file)
    wrong_cert, wrong_key      signed by ca, but only for wrong.example.invalid
    expired_cert, expired_key  signed by ca for 127.0.0.1/localhost, expired in 2020
    untrusted_cert, untrusted_key  self-signed for 127.0.0.1/localhost (not under ca)

Calling it again on the same directory reuses files already there.  Keys are
EC P-256 (fast to make).  Command line: python3 certs.py DIR  (prints the JSON).
"""

import json
import os
import subprocess
import sys

SAN_GOOD = "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"
SAN_WRONG = "subjectAltName=DNS:wrong.example.invalid"


def _run(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _key(path, cwd):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
          "-out", path], cwd)
    os.chmod(os.path.join(cwd, path), 0o600)


def _ca_config(d):
    """A minimal `openssl ca` setup, needed only for arbitrary validity dates."""
    cadir = os.path.join(d, "ca-db")
    os.makedirs(cadir, exist_ok=True)
    open(os.path.join(cadir, "index.txt"), "w").close()
    with open(os.path.join(cadir, "serial"), "w") as fh:
        fh.write("1000\n")
    conf = os.path.join(d, "ca.cnf")
    with open(conf, "w") as fh:
        fh.write("""[ ca ]
default_ca = testca
[ testca ]
dir = %s
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
certificate = %s/ca.pem
private_key = %s/ca.key
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[ anything ]
commonName = supplied
[ srv_ext ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
%s
""" % (cadir, d, d, SAN_GOOD))
    return conf


def make_certs(d):
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    p = {name: os.path.join(d, name) for name in (
        "ca.pem", "ca.key", "server.pem", "server.key", "chain.pem",
        "wrong.pem", "wrong.key", "expired.pem", "expired.key",
        "untrusted.pem", "untrusted.key")}
    out = {"ca": p["ca.pem"], "ca_key": p["ca.key"], "cert": p["server.pem"],
           "key": p["server.key"], "chain": p["chain.pem"],
           "wrong_cert": p["wrong.pem"], "wrong_key": p["wrong.key"],
           "expired_cert": p["expired.pem"], "expired_key": p["expired.key"],
           "untrusted_cert": p["untrusted.pem"], "untrusted_key": p["untrusted.key"]}
    if all(os.path.exists(v) for v in out.values()):
        return out
    # CA
    _key("ca.key", d)
    _run(["req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650",
          "-subj", "/CN=oasmtp test CA", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem"], d)

    def signed(name, san, extra_days="825"):
        _key(name + ".key", d)
        _run(["req", "-new", "-key", name + ".key", "-subj", "/CN=" + name,
              "-out", name + ".csr"], d)
        ext = os.path.join(d, name + ".ext")
        with open(ext, "w") as fh:
            fh.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                     "extendedKeyUsage=serverAuth\n" + san + "\n")
        _run(["x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-days", extra_days, "-sha256", "-extfile", ext,
              "-out", name + ".pem"], d)

    signed("server", SAN_GOOD)
    signed("wrong", SAN_WRONG)
    with open(p["chain.pem"], "w") as fh:
        fh.write(open(p["server.pem"]).read() + open(p["ca.pem"]).read())
    # expired: `openssl ca` accepts explicit start and end dates
    conf = _ca_config(d)
    _key("expired.key", d)
    _run(["req", "-new", "-key", "expired.key", "-subj", "/CN=expired",
          "-out", "expired.csr"], d)
    _run(["ca", "-batch", "-config", conf, "-extensions", "srv_ext",
          "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
          "-in", "expired.csr", "-out", "expired.pem", "-notext"], d)
    # self-signed, not under the test CA
    _key("untrusted.key", d)
    _run(["req", "-x509", "-new", "-key", "untrusted.key", "-sha256", "-days", "825",
          "-subj", "/CN=untrusted", "-addext", SAN_GOOD, "-out", "untrusted.pem"], d)
    return out


if __name__ == "__main__":
    print(json.dumps(make_certs(sys.argv[1] if len(sys.argv) > 1 else "."), indent=1))
