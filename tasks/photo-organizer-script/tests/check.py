import subprocess
import tempfile
from pathlib import Path

from checklib import check, main

SCRIPT = "/app/organize.sh"


def run(folder):
    return subprocess.run(["bash", SCRIPT, str(folder)], capture_output=True, text=True, timeout=60)


def tree(folder):
    return {str(p.relative_to(folder)): p.read_text() for p in folder.rglob("*") if p.is_file()}


def make(files):
    folder = Path(tempfile.mkdtemp()) / "in put"
    folder.mkdir()
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder


@check
def script_exists():
    assert Path(SCRIPT).is_file()


@check
def basic_sorting():
    folder = make({"IMG_20240315_083000.jpg": "a", "IMG_20231231_235959.JPEG": "b", "readme.md": "c"})
    res = run(folder)
    assert res.returncode == 0, res.stderr
    assert tree(folder) == {"2024/03/2024-03-15_083000.jpg": "a", "2023/12/2023-12-31_235959.jpg": "b",
                            "unsorted/readme.md": "c"}, tree(folder)
    assert res.stdout.strip().splitlines()[-1] == "moved=2 unsorted=1", res.stdout


@check
def collisions_numbered_in_name_order():
    folder = make({"IMG_20240101_120000.jpg": "1", "IMG_20240101_120000.JPG": "2",
                   "IMG_20240101_120000.jpeg": "3"})
    res = run(folder)
    assert res.returncode == 0, res.stderr
    # C order: .JPG < .jpeg < .jpg
    want = {"2024/01/2024-01-01_120000.jpg": "2", "2024/01/2024-01-01_120000_1.jpg": "3",
            "2024/01/2024-01-01_120000_2.jpg": "1"}
    assert tree(folder) == want, tree(folder)


@check
def invalid_dates_and_names_unsorted():
    folder = make({"IMG_20230229_101010.jpg": "leap?", "IMG_20240229_101010.jpg": "leap",
                   "IMG_20241301_000000.jpg": "m13", "IMG_20240101_1200.jpg": "short",
                   "img_20240101_120000.jpg": "lower", "IMG_20240101_120000.png": "png",
                   "my photo 1.jpg": "space"})
    res = run(folder)
    assert res.returncode == 0, res.stderr
    want = {"2024/02/2024-02-29_101010.jpg": "leap", "unsorted/IMG_20230229_101010.jpg": "leap?",
            "unsorted/IMG_20241301_000000.jpg": "m13", "unsorted/IMG_20240101_1200.jpg": "short",
            "unsorted/img_20240101_120000.jpg": "lower", "unsorted/IMG_20240101_120000.png": "png",
            "unsorted/my photo 1.jpg": "space"}
    assert tree(folder) == want, tree(folder)
    assert res.stdout.strip().splitlines()[-1] == "moved=1 unsorted=6", res.stdout


@check
def subfolders_left_alone():
    folder = make({"IMG_20240505_050505.jpg": "x"})
    (folder / "keep").mkdir()
    (folder / "keep" / "IMG_20240101_000000.jpg").write_text("inner")
    res = run(folder)
    assert res.returncode == 0, res.stderr
    assert tree(folder) == {"2024/05/2024-05-05_050505.jpg": "x", "keep/IMG_20240101_000000.jpg": "inner"}


@check
def usage_error():
    res = run("/nonexistent/folder")
    assert res.returncode == 2, res.returncode
    assert res.stderr.strip(), "no message on stderr"


if __name__ == "__main__":
    raise SystemExit(main())
