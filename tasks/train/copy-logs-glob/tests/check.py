import os
from pathlib import Path

from checklib import check, main


@check
def a_log_copied():
    p = Path('/app/saved_logs/a.log')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == 'alpha\n', f"{p} holds {p.read_text()!r}"


@check
def b_log_copied():
    p = Path('/app/saved_logs/b.log')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == 'beta\n', f"{p} holds {p.read_text()!r}"


@check
def removed():
    for p in map(Path, ['/app/saved_logs/notes.md']):
        assert not os.path.lexists(p), f"{p} still exists"


@check
def original_is_unchanged():
    p = Path('/app/logs/a.log')
    assert p.is_file() and p.read_text() == 'alpha\n', f"{p} was changed or removed"


if __name__ == "__main__":
    raise SystemExit(main())
