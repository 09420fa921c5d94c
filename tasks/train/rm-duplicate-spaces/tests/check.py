import os
from pathlib import Path

from checklib import check, main


@check
def removed():
    for p in map(Path, ['/app/notes/draft (copy).txt']):
        assert not os.path.lexists(p), f"{p} still exists"


@check
def original_is_unchanged():
    p = Path('/app/notes/draft.txt')
    assert p.is_file() and p.read_text() == 'draft\n', f"{p} was changed or removed"


if __name__ == "__main__":
    raise SystemExit(main())
