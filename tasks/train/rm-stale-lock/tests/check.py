import os
from pathlib import Path

from checklib import check, main


@check
def removed():
    for p in map(Path, ['/app/run/app.lock']):
        assert not os.path.lexists(p), f"{p} still exists"


@check
def original_is_unchanged():
    p = Path('/app/run/app.pid')
    assert p.is_file() and p.read_text() == '4242\n', f"{p} was changed or removed"


if __name__ == "__main__":
    raise SystemExit(main())
