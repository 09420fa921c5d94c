from pathlib import Path

from checklib import check, main


@check
def empty_files_exist():
    for p in map(Path, ['/app/logs/app.log']):
        assert p.is_file(), f"{p} is missing"
        assert p.stat().st_size == 0, f"{p} is not empty"


if __name__ == "__main__":
    raise SystemExit(main())
