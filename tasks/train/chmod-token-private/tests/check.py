from pathlib import Path

from checklib import check, main


@check
def mode_is_right():
    p = Path('/app/secrets/token.txt')
    assert p.exists(), f"{p} is missing"
    got = p.stat().st_mode & 0o7777
    assert got == 0o600, f"{p} has mode {got:o}, expected 600"


if __name__ == "__main__":
    raise SystemExit(main())
