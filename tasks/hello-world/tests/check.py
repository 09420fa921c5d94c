from pathlib import Path

from checklib import check, main

TARGET = Path("/app/hello.txt")


@check
def file_exists():
    assert TARGET.is_file(), f"{TARGET} does not exist"


@check
def content_is_hello_world():
    text = TARGET.read_text()
    assert text.strip() == "Hello, world!", f"content is {text!r}"


if __name__ == "__main__":
    raise SystemExit(main())
