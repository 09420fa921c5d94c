from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_content():
    p = Path('/app/archive/users-2024.json')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == '[{"id": 1, "login": "ada"}, {"id": 2, "login": "linus"}]\n', f"{p} holds {p.read_text()!r}"


@check
def original_is_unchanged():
    p = Path('/app/data/users.json')
    assert p.is_file() and p.read_text() == '[{"id": 1, "login": "ada"}, {"id": 2, "login": "linus"}]\n', f"{p} was changed or removed"


if __name__ == "__main__":
    raise SystemExit(main())
