from pathlib import Path

from checklib import check, main


@check
def output_is_a_directory():
    assert Path("/app/output").is_dir(), "/app/output is not a directory"


if __name__ == "__main__":
    raise SystemExit(main())
