import os
from pathlib import Path

from checklib import check, main


@check
def one_moved():
    p = Path('/app/processed/one.txt')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == '1\n', f"{p} holds {p.read_text()!r}"


@check
def two_moved():
    p = Path('/app/processed/two.txt')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == '2\n', f"{p} holds {p.read_text()!r}"


@check
def removed():
    for p in map(Path, ['/app/incoming/one.txt', '/app/incoming/two.txt']):
        assert not os.path.lexists(p), f"{p} still exists"


if __name__ == "__main__":
    raise SystemExit(main())
