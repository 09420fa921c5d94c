import os
from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_content():
    p = Path('/app/results/run1.txt')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == 'ok\n', f"{p} holds {p.read_text()!r}"


@check
def removed():
    for p in map(Path, ['/app/tmp_results']):
        assert not os.path.lexists(p), f"{p} still exists"


if __name__ == "__main__":
    raise SystemExit(main())
