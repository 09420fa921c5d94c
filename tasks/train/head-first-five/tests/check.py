from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_lines():
    p = Path('/app/first5.txt')
    assert p.is_file(), f"{p} is missing"
    got = p.read_text().splitlines()
    assert got == ['12:00 request 0 served', '12:01 request 1 served', '12:02 request 2 served', '12:03 request 3 served', '12:04 request 4 served'], f"{p} has lines {got!r}"


if __name__ == "__main__":
    raise SystemExit(main())
