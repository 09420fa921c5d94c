import os
from pathlib import Path

from checklib import check, main


@check
def is_a_symlink_to_the_target():
    p = Path('/app/latest.log')
    assert p.is_symlink(), f"{p} is not a symbolic link"
    assert p.resolve() == Path('/app/logs/2024-05-01.log').resolve(), f"{p} points to {os.readlink(p)}"


if __name__ == "__main__":
    raise SystemExit(main())
