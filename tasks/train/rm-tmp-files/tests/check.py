import os
from pathlib import Path

from checklib import check, main


@check
def removed():
    for p in map(Path, ['/app/cache/x.tmp', '/app/cache/y.tmp']):
        assert not os.path.lexists(p), f"{p} still exists"


@check
def original_is_unchanged():
    p = Path('/app/cache/index.db')
    assert p.is_file() and p.read_text() == 'db\n', f"{p} was changed or removed"


if __name__ == "__main__":
    raise SystemExit(main())
