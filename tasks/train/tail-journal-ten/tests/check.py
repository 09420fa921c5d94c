from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_lines():
    p = Path('/app/tail10.txt')
    assert p.is_file(), f"{p} is missing"
    got = p.read_text().splitlines()
    assert got == ['day 6: wrote 18 pages', 'day 7: wrote 21 pages', 'day 8: wrote 24 pages', 'day 9: wrote 27 pages', 'day 10: wrote 30 pages', 'day 11: wrote 33 pages', 'day 12: wrote 36 pages', 'day 13: wrote 39 pages', 'day 14: wrote 42 pages', 'day 15: wrote 45 pages'], f"{p} has lines {got!r}"


if __name__ == "__main__":
    raise SystemExit(main())
