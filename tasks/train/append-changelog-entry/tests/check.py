from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_lines():
    p = Path('/app/CHANGELOG')
    assert p.is_file(), f"{p} is missing"
    got = p.read_text().splitlines()
    assert got == ['v1.0: first release', 'v1.1: faster search', 'v1.2: fixed login bug'], f"{p} has lines {got!r}"


if __name__ == "__main__":
    raise SystemExit(main())
