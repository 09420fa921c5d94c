import tarfile
from pathlib import Path

from checklib import check, main


@check
def archive_holds_the_files():
    p = Path('/app/site.tar.gz')
    assert p.is_file(), f"{p} is missing"
    with tarfile.open(p, 'r:gz') as tar:
        found = {m.name.lstrip('./'): tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    for name, text in {'index.html': '<h1>hi</h1>\n', 'style.css': 'h1 {color: red}\n'}.items():
        hits = [v for k, v in found.items() if k == name or k.endswith('/' + name)]
        assert hits == [text], f"{name} missing or changed in the archive ({sorted(found)})"


if __name__ == "__main__":
    raise SystemExit(main())
