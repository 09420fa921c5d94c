from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_content():
    p = Path('/app/reports/april.csv')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == 'date,amount\n2024-03-01,120\n2024-03-15,75\n', f"{p} holds {p.read_text()!r}"


@check
def original_is_unchanged():
    p = Path('/app/reports/march.csv')
    assert p.is_file() and p.read_text() == 'date,amount\n2024-03-01,120\n2024-03-15,75\n', f"{p} was changed or removed"


if __name__ == "__main__":
    raise SystemExit(main())
