import os
from pathlib import Path

from checklib import check, main


@check
def is_a_symlink_to_the_target():
    p = Path('/app/config.yaml')
    assert p.is_symlink(), f"{p} is not a symbolic link"
    assert p.resolve() == Path('/app/configs/production.yaml').resolve(), f"{p} points to {os.readlink(p)}"


if __name__ == "__main__":
    raise SystemExit(main())
