from pathlib import Path

from checklib import check, main


@check
def mode_is_right():
    p = Path('/app/shared/readme.txt')
    assert p.exists(), f"{p} is missing"
    got = p.stat().st_mode & 0o7777
    assert got == 0o444, f"{p} has mode {got:o}, expected 444"


if __name__ == "__main__":
    raise SystemExit(main())
