import os
from pathlib import Path

from checklib import check, main


@check
def result_has_the_expected_content():
    p = Path('/app/documents/report.pdf')
    assert p.is_file(), f"{p} is missing"
    assert p.read_text() == 'PDF\n', f"{p} holds {p.read_text()!r}"


@check
def removed():
    for p in map(Path, ['/app/downloads/report.pdf']):
        assert not os.path.lexists(p), f"{p} still exists"


if __name__ == "__main__":
    raise SystemExit(main())
