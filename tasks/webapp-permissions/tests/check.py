import grp
import os
import pwd
import stat
import subprocess
from pathlib import Path

from checklib import check, main

ROOT = Path("/srv/webapp")
EXPECTED_FILES = ["public/index.html", "public/css/site.css", "bin/start.sh", "bin/rotate-logs.sh",
                  "config/app.conf", "config/secret.env", "logs/app.log", "uploads/.keep"]


def entries():
    yield ROOT
    yield from ROOT.rglob("*")


def mode(p):
    return stat.S_IMODE(os.lstat(p).st_mode)


def as_user(user, *cmd):
    return subprocess.run(["runuser", "-u", user, "--", *cmd], capture_output=True, text=True, timeout=20)


@check
def files_still_there():
    for rel in EXPECTED_FILES:
        assert (ROOT / rel).is_file(), f"{rel} missing"


@check
def owned_by_deploy_www():
    uid, gid = pwd.getpwnam("deploy").pw_uid, grp.getgrnam("www").gr_gid
    bad = [str(p) for p in entries() if (os.lstat(p).st_uid, os.lstat(p).st_gid) != (uid, gid)]
    assert not bad, f"wrong owner/group: {bad[:5]}"


@check
def directory_modes():
    for p in entries():
        if p.is_dir():
            want = 0o2770 if p in (ROOT / "uploads", ROOT / "logs") else 0o2750
            assert mode(p) == want, f"{p}: {oct(mode(p))}, want {oct(want)}"


@check
def file_modes():
    for p in entries():
        if p.is_file():
            if p.parent == ROOT / "bin":
                want = 0o750
            elif p == ROOT / "config" / "secret.env":
                want = 0o600
            else:
                want = 0o640
            assert mode(p) == want, f"{p}: {oct(mode(p))}, want {oct(want)}"


@check
def alice_in_www_and_dev_bob_not():
    groups = as_user("alice", "id", "-nG").stdout.split()
    assert "www" in groups and "dev" in groups, f"alice groups: {groups}"
    assert "www" not in as_user("bob", "id", "-nG").stdout.split(), "bob is in www"


@check
def access_works_as_intended():
    assert as_user("alice", "cat", str(ROOT / "public/index.html")).returncode == 0, "alice cannot read"
    assert as_user("alice", "cat", str(ROOT / "config/secret.env")).returncode != 0, "alice reads the secret"
    assert as_user("bob", "cat", str(ROOT / "public/index.html")).returncode != 0, "bob can read"
    assert as_user("deploy", "cat", str(ROOT / "config/secret.env")).returncode == 0, "deploy cannot read"
    assert as_user("deploy", "bash", "-c", f"{ROOT}/bin/start.sh").stdout.strip() == "starting webapp"
    made = as_user("alice", "touch", str(ROOT / "uploads/alice.txt"))
    assert made.returncode == 0, f"alice cannot write uploads: {made.stderr}"
    assert grp.getgrgid(os.stat(ROOT / "uploads/alice.txt").st_gid).gr_name == "www", "setgid not effective"
    os.remove(ROOT / "uploads/alice.txt")


if __name__ == "__main__":
    raise SystemExit(main())
