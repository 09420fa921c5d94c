from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_content():
    p = Path('/app/notes/todo.txt.bak')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == 'water the plants\ncall the bank\nrenew passport\n', f"{p} holds {p.read_text()!r}"


@check
def original_is_unchanged():
    p = Path('/app/notes/todo.txt')
    assert p.is_file() and p.read_text() == 'water the plants\ncall the bank\nrenew passport\n', f"{p} was changed or removed"


if __name__ == "__main__":
    raise SystemExit(main())
