import tarfile
from pathlib import Path

from checklib import check, main


@check
def archive_holds_the_files():
    p = Path('/app/logs.tar')
    assert p.is_file(), f"{p} is missing"
    with tarfile.open(p, 'r:') as tar:
        found = {m.name.lstrip('./'): tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    for name, text in {'a.log': 'first\n', 'b.log': 'second\n'}.items():
        hits = [v for k, v in found.items() if k == name or k.endswith('/' + name)]
        assert hits == [text], f"{name} missing or changed in the archive ({sorted(found)})"


if __name__ == "__main__":
    raise SystemExit(main())
