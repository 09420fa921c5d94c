import os
import re
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from checklib import check, main

D = Path("/app/certs")
KEY, CRT, PEM = D / "server.key", D / "server.crt", D / "server.pem"


def ssl(*args, data=None):
    out = subprocess.run(["openssl", *args], input=data, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"openssl {' '.join(args)} failed: {out.stderr.strip()[:300]}"
    return out.stdout


def cert_text():
    return ssl("x509", "-in", str(CRT), "-noout", "-text")


@check
def key_is_unencrypted_rsa_3072():
    text = ssl("pkey", "-in", str(KEY), "-passin", "pass:", "-noout", "-text")
    assert re.search(r"Private-Key: \(3072 bit", text), "not a 3072-bit key"
    assert "RSA key ok" in ssl("rsa", "-in", str(KEY), "-passin", "pass:", "-check", "-noout"), "not an RSA key"


@check
def key_mode_is_600():
    mode = stat.S_IMODE(os.stat(KEY).st_mode)
    assert mode == 0o600, f"mode is {oct(mode)}"


@check
def cert_matches_key():
    key_pub = ssl("pkey", "-in", str(KEY), "-pubout")
    crt_pub = ssl("x509", "-in", str(CRT), "-noout", "-pubkey")
    assert key_pub == crt_pub, "certificate public key differs from server.key"


@check
def subject_and_self_signed():
    subject = ssl("x509", "-in", str(CRT), "-noout", "-subject", "-nameopt", "RFC2253").strip()
    issuer = ssl("x509", "-in", str(CRT), "-noout", "-issuer", "-nameopt", "RFC2253").strip()
    parts = sorted(subject.removeprefix("subject=").split(","))
    assert parts == ["C=DE", "CN=ablbench.internal", "O=Ablbench Test"], subject
    assert issuer.removeprefix("issuer=") == subject.removeprefix("subject="), "not self-signed"
    ssl("verify", "-CAfile", str(CRT), str(CRT))


@check
def san_is_exact():
    m = re.search(r"Subject Alternative Name:.*?\n\s*(.+)\n", cert_text())
    assert m, "no subjectAltName"
    names = sorted(x.strip() for x in m.group(1).split(","))
    want = sorted(["DNS:ablbench.internal", "DNS:*.ablbench.internal", "IP Address:127.0.0.1"])
    assert names == want, f"SAN is {names}"


@check
def is_ca():
    assert re.search(r"Basic Constraints:.*\n\s*CA:TRUE", cert_text()), "basicConstraints CA:TRUE missing"


@check
def valid_730_days_from_now():
    fmt = "%b %d %H:%M:%S %Y %Z"
    start = datetime.strptime(ssl("x509", "-in", str(CRT), "-noout", "-startdate").split("=", 1)[1].strip(), fmt)
    end = datetime.strptime(ssl("x509", "-in", str(CRT), "-noout", "-enddate").split("=", 1)[1].strip(), fmt)
    now = datetime.now(UTC).replace(tzinfo=None)
    assert abs((start - now).total_seconds()) < 2 * 86400, f"notBefore is {start}"
    days = (end - start).total_seconds() / 86400
    assert abs(days - 730) <= 1, f"valid for {days:.1f} days"


@check
def pem_is_key_then_cert():
    text = PEM.read_text()
    key_at = re.search(r"-----BEGIN (RSA )?PRIVATE KEY-----", text)
    crt_at = text.find("-----BEGIN CERTIFICATE-----")
    assert key_at and crt_at > key_at.start(), "server.pem must hold the key, then the certificate"
    assert ssl("x509", "-in", str(PEM), "-noout", "-fingerprint", "-sha256") == \
        ssl("x509", "-in", str(CRT), "-noout", "-fingerprint", "-sha256")
    assert ssl("pkey", "-in", str(PEM), "-pubout") == ssl("pkey", "-in", str(KEY), "-pubout")


@check
def fingerprint_file():
    want = ssl("x509", "-in", str(CRT), "-noout", "-fingerprint", "-sha256").strip()
    got = (D / "fingerprint.txt").read_text().strip()
    assert got == want, f"fingerprint.txt has {got!r}"


if __name__ == "__main__":
    raise SystemExit(main())
