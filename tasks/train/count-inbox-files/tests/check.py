from pathlib import Path

from checklib import check, main


@check
def number_is_right():
    p = Path('/app/inbox_count.txt')
    assert p.is_file(), f"{p} is missing"
    text = p.read_text().strip()
    assert text == '5', f"{p} holds {text!r}, expected 5"


if __name__ == "__main__":
    raise SystemExit(main())
