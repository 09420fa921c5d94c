from pathlib import Path

from checklib import check, main


@check
def folders_exist():
    for p in map(Path, ['/app/data/2024/01', '/app/data/2024/02']):
        assert p.is_dir(), f"{p} is not a folder"


if __name__ == "__main__":
    raise SystemExit(main())
