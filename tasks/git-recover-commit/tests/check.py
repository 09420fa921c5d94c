import hashlib
import subprocess

from checklib import check, main

REPO = "/app/project"
CONFIG_SHA256 = "e8e7086cdbfd14881a9df11d6e78a109e08831c5971d61f357ace011840d4848"


def git(*args):
    out = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, check=True)
    return out.stdout


@check
def config_loader_commit_on_main():
    titles = git("log", "main", "--format=%s").splitlines()
    assert "Add config loader" in titles, f"main has {titles}"


@check
def update_readme_still_on_main():
    assert "Update README" in git("log", "main", "--format=%s").splitlines()
    assert "config loader" in git("show", "main:README.md")


@check
def config_py_restored_exactly():
    content = git("show", "main:config.py").encode()
    assert hashlib.sha256(content).hexdigest() == CONFIG_SHA256, "config.py differs from the original"


@check
def history_is_linear():
    assert git("rev-list", "--merges", "main").strip() == "", "main has merge commits"


@check
def main_checked_out_and_clean():
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main", "HEAD is not on main"
    assert git("status", "--porcelain").strip() == "", "working tree is not clean"


if __name__ == "__main__":
    raise SystemExit(main())
