from pathlib import Path

from checklib import check, main


@check
def folders_exist():
    for p in map(Path, ['/app/newproj/docs', '/app/newproj/tests', '/app/newproj/src/pkg']):
        assert p.is_dir(), f"{p} is not a folder"


if __name__ == "__main__":
    raise SystemExit(main())
