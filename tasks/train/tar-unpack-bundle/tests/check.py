from pathlib import Path

from checklib import check, main


@check
def readme_extracted():
    p = Path('/app/unpacked/readme.txt')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == 'bundle readme\n', f"{p} holds {p.read_text()!r}"


@check
def conf_extracted():
    p = Path('/app/unpacked/conf/app.ini')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == 'a=1\n', f"{p} holds {p.read_text()!r}"


if __name__ == "__main__":
    raise SystemExit(main())
