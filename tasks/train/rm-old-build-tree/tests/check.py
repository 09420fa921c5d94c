import os
from pathlib import Path

from checklib import check, main


@check
def removed():
    for p in map(Path, ['/app/old_build']):
        assert not os.path.lexists(p), f"{p} still exists"


if __name__ == "__main__":
    raise SystemExit(main())
