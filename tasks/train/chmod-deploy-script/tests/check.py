from pathlib import Path

from checklib import check, main


@check
def owner_can_execute():
    for p in map(Path, ['/app/bin/deploy.sh']):
        assert p.is_file(), f"{p} is missing"
        assert p.stat().st_mode & 0o100, f"{p} is not executable by its owner"


if __name__ == "__main__":
    raise SystemExit(main())
