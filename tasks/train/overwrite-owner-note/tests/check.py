from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_lines():
    p = Path('/app/OWNER')
    assert p.is_file(), f"{p} is missing"
    got = p.read_text().splitlines()
    assert got == ['Owner: Maria, ops team'], f"{p} has lines {got!r}"


if __name__ == "__main__":
    raise SystemExit(main())
