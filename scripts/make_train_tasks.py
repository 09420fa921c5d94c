"""Write the bundled TRAINING task set, ``tasks/train/<task>/`` (TB2 format), from the table below.

Rules, in order:

1. Every task is small, offline and easy: one shell skill per family (copy, chmod, count, empty
   files, nested folders, append a line, overwrite a file's text, delete, move/rename, sort,
   head/tail, grep, symlink, tar). No family uses an instruction template of the evaluation tasks in ``tasks/*``
   (``tests/test_train_tasks.py`` checks the word n-gram overlap).
2. ``environment/Dockerfile`` is ``FROM ablbench/base:bookworm`` plus at most one ``RUN``
   that writes the inputs with printf (no COPY, no build context): the images build in seconds.
3. ``solution/solve.sh`` is a sequence of steps, each a ``# comment`` (the replay agent's plan)
   followed by one command line; the replay agent turns each step into one action. Most
   solutions act first; every one ends with a step that shows the result (``cat``, ``ls``,
   ``stat``, ``find``...), so the replay's completion reply reads real evidence that the task
   is done (``harness.agents.replay`` rule 2).
4. ``tests/`` holds ``test.sh`` and ``checklib.py`` copied from ``tasks/hello-world`` and a
   generated ``check.py`` with the expected results as constants (pristine copies).

Run it from the repository root: ``python scripts/make_train_tasks.py`` (rewrites ``tasks/train``).
"""

from __future__ import annotations

import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tasks" / "train"
SHARED_TESTS = ROOT / "tasks" / "hello-world" / "tests"

TASK_TOML = """\
version = "1.0"

[metadata]
author_name = "ablbench"
difficulty = "easy"
category = "{category}"
tags = ["train", "{family}"]
split = "train"

[agent]
timeout_sec = 180.0

[verifier]
timeout_sec = 60.0

[environment]
build_timeout_sec = 300.0
cpus = 1
memory = "512M"
storage = "1G"
allow_internet = false
"""

CHECK_TAIL = '\n\nif __name__ == "__main__":\n    raise SystemExit(main())\n'


@dataclass
class Task:
    """One training task: its prompt, its inputs, its reference steps and its checks."""

    name: str
    family: str
    instruction: str
    files: dict[str, str] = field(default_factory=dict)  # inputs written by the image
    setup: list[str] = field(default_factory=list)  # extra image shell commands (after the files)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (comment, command)
    checks: str = ""  # body of check.py (after the imports)


def _printf(path: str, text: str) -> str:
    # %b: the text is an argument, not the format (a text starting with "-" is no option)
    escaped = text.replace("\\", "\\\\").replace("\n", "\\n")
    return f"printf '%b' {shlex.quote(escaped)} > {shlex.quote(path)}"


def _dockerfile(task: Task) -> str:
    cmds = []
    folders = sorted({str(Path(p).parent) for p in task.files} - {"/app"})
    if folders:
        cmds.append("mkdir -p " + " ".join(shlex.quote(f) for f in folders))
    cmds += [_printf(p, t) for p, t in task.files.items()]
    cmds += task.setup
    text = "FROM ablbench/base:bookworm\nWORKDIR /app\n"
    if cmds:
        text += "RUN " + " \\\n && ".join(cmds) + "\n"
    return text


def _solve(task: Task) -> str:
    lines = ["#!/bin/bash", "set -euo pipefail"]
    for comment, command in task.steps:
        lines += [f"# {comment}", command]
    return "\n".join(lines) + "\n"


def _check_py(checks: str) -> str:
    """check.py: the imports the checks use, then the checks two blank lines apart."""
    head = [f"import {m}\n" for m in ("os", "tarfile") if f"{m}." in checks]
    body = "\n\n".join("@check\n" + c.strip("\n") + "\n" for c in checks.split("\n@check\n") if c.strip())
    return "".join(head) + "from pathlib import Path\n\nfrom checklib import check, main\n\n\n" + body + CHECK_TAIL


def _lines(*items: str) -> str:
    return "".join(f"{x}\n" for x in items)


# ----------------------------------------------------------------------------- check snippets


def chk_file(path: str, content: str, name: str = "result_has_the_expected_content") -> str:
    return (f"\n@check\ndef {name}():\n    p = Path({path!r})\n    assert p.is_file(), f\"{{p}} is missing\"\n"
            f"    assert p.read_text() == {content!r}, f\"{{p}} holds {{p.read_text()!r}}\"\n")


def chk_lines(path: str, lines: list[str], name: str = "result_has_the_expected_lines") -> str:
    return (f"\n@check\ndef {name}():\n    p = Path({path!r})\n    assert p.is_file(), f\"{{p}} is missing\"\n"
            f"    got = p.read_text().splitlines()\n    assert got == {lines!r}, f\"{{p}} has lines {{got!r}}\"\n")


def chk_number(path: str, value: int) -> str:
    return (f"\n@check\ndef number_is_right():\n    p = Path({path!r})\n    assert p.is_file(), f\"{{p}} is missing\"\n"
            f"    text = p.read_text().strip()\n"
            f"    assert text == {str(value)!r}, f\"{{p}} holds {{text!r}}, expected {value}\"\n")


def chk_kept(path: str, content: str) -> str:
    return (f"\n@check\ndef original_is_unchanged():\n    p = Path({path!r})\n"
            f"    assert p.is_file() and p.read_text() == {content!r}, f\"{{p}} was changed or removed\"\n")


def chk_gone(*paths: str) -> str:
    return (f"\n@check\ndef removed():\n    for p in map(Path, {list(paths)!r}):\n"
            f"        assert not os.path.lexists(p), f\"{{p}} still exists\"\n")


def chk_dirs(*paths: str) -> str:
    return (f"\n@check\ndef folders_exist():\n    for p in map(Path, {list(paths)!r}):\n"
            f"        assert p.is_dir(), f\"{{p}} is not a folder\"\n")


def chk_empty(*paths: str) -> str:
    return (f"\n@check\ndef empty_files_exist():\n    for p in map(Path, {list(paths)!r}):\n"
            f"        assert p.is_file(), f\"{{p}} is missing\"\n"
            f"        assert p.stat().st_size == 0, f\"{{p}} is not empty\"\n")


def chk_mode(path: str, mode: int) -> str:
    return (f"\n@check\ndef mode_is_right():\n    p = Path({path!r})\n    assert p.exists(), f\"{{p}} is missing\"\n"
            f"    got = p.stat().st_mode & 0o7777\n"
            f"    assert got == {mode:#o}, f\"{{p}} has mode {{got:o}}, expected {mode:o}\"\n")


def chk_exec(*paths: str) -> str:
    return (f"\n@check\ndef owner_can_execute():\n    for p in map(Path, {list(paths)!r}):\n"
            f"        assert p.is_file(), f\"{{p}} is missing\"\n"
            f"        assert p.stat().st_mode & 0o100, f\"{{p}} is not executable by its owner\"\n")


def chk_link(link: str, target: str) -> str:
    return (f"\n@check\ndef is_a_symlink_to_the_target():\n    p = Path({link!r})\n"
            f"    assert p.is_symlink(), f\"{{p}} is not a symbolic link\"\n"
            f"    assert p.resolve() == Path({target!r}).resolve(), f\"{{p}} points to {{os.readlink(p)}}\"\n")


def chk_tar(archive: str, members: dict[str, str], gz: bool) -> str:
    mode = "r:gz" if gz else "r:"
    return (f"\n@check\ndef archive_holds_the_files():\n    p = Path({archive!r})\n"
            f"    assert p.is_file(), f\"{{p}} is missing\"\n"
            f"    with tarfile.open(p, {mode!r}) as tar:\n"
            f"        found = {{m.name.lstrip('./'): tar.extractfile(m).read().decode() for m in tar.getmembers() "
            f"if m.isfile()}}\n"
            f"    for name, text in {members!r}.items():\n"
            f"        hits = [v for k, v in found.items() if k == name or k.endswith('/' + name)]\n"
            f"        assert hits == [text], f\"{{name}} missing or changed in the archive ({{sorted(found)}})\"\n")


# ----------------------------------------------------------------------------- the task table

TODO = _lines("water the plants", "call the bank", "renew passport")
CONF = _lines("[server]", "port = 8088", "workers = 4")
MARCH = _lines("date,amount", "2024-03-01,120", "2024-03-15,75")
USERS = '[{"id": 1, "login": "ada"}, {"id": 2, "login": "linus"}]\n'
CITIES = _lines("Lisbon", "Oslo", "Quito", "Hanoi", "Perth", "Accra", "Lima")
INTRO = _lines("Welcome to the garden club.", "We meet every Tuesday at noon", "near the old greenhouse.")
MAIN_PY = _lines("import sys", "", "", "def main():", "    print(sys.argv)", "", "", "main()")
NAMES = _lines("olivia", "bruno", "zara", "mei", "anton", "keke")
SCORES = _lines("42", "7", "300", "19", "88", "5")
TAGS = _lines("red", "blue", "red", "green", "blue", "amber")
VALUES = _lines("3", "14", "1", "59", "26")
SERVER_LOG = _lines(*[f"12:0{i} request {i} served" for i in range(9)])
HISTORY = _lines("ls", "cd src", "make", "make test", "git status", "git push")
TABLE = _lines("id,name,price", "1,pen,1.20", "2,ink,3.50")
JOURNAL = _lines(*[f"day {i}: wrote {i * 3} pages" for i in range(1, 16)])
APP_LOG = _lines("INFO boot", "ERROR disk full", "INFO retry", "ERROR no space left", "WARN slow")
CONTACTS = _lines("kim kim@example.org", "raj raj@example.com", "lu lu@example.org", "ben ben@mail.net")
INI = _lines("# settings", "mode=fast", "# old: mode=slow", "level=3")
WORDS = _lines("Running", "jump", "singing", "tree", "KING", "walk")


def _tasks() -> list[Task]:
    t: list[Task] = []

    # --- copy (cp) --------------------------------------------------------------------------
    t.append(Task("copy-backup-todo", "copy",
                  "Make a backup copy of `/app/notes/todo.txt` named `/app/notes/todo.txt.bak`. "
                  "Keep the original where it is.",
                  files={"/app/notes/todo.txt": TODO},
                  steps=[("copy the file next to itself under the backup name",
                          "cp /app/notes/todo.txt /app/notes/todo.txt.bak"),
                         ("both files should be listed now", "ls -l /app/notes")],
                  checks=chk_file("/app/notes/todo.txt.bak", TODO) + chk_kept("/app/notes/todo.txt", TODO)))
    t.append(Task("copy-conf-to-backup", "copy",
                  "Copy `/app/config/app.conf` into the folder `/app/backup/`, which does not exist yet.",
                  files={"/app/config/app.conf": CONF},
                  steps=[("the target folder is missing, so make it first", "mkdir -p /app/backup"),
                         ("copy the config file into it", "cp /app/config/app.conf /app/backup/"),
                         ("check that the copy arrived", "ls -l /app/backup")],
                  checks=chk_file("/app/backup/app.conf", CONF) + chk_kept("/app/config/app.conf", CONF)))
    t.append(Task("copy-report-duplicate", "copy",
                  "Duplicate the spreadsheet `/app/reports/march.csv` as `/app/reports/april.csv`; afterwards "
                  "both must hold the same data.",
                  files={"/app/reports/march.csv": MARCH},
                  steps=[("duplicate it under the new name", "cp /app/reports/march.csv /app/reports/april.csv"),
                         ("read the duplicate back", "cat /app/reports/april.csv")],
                  checks=chk_file("/app/reports/april.csv", MARCH) + chk_kept("/app/reports/march.csv", MARCH)))
    t.append(Task("copy-json-archive", "copy",
                  "Put an identical copy of `/app/data/users.json` at `/app/archive/users-2024.json`.",
                  files={"/app/data/users.json": USERS},
                  steps=[("make the archive folder", "mkdir -p /app/archive"),
                         ("copy the JSON file there with the new name",
                          "cp /app/data/users.json /app/archive/users-2024.json"),
                         ("show the archived copy", "cat /app/archive/users-2024.json")],
                  checks=chk_file("/app/archive/users-2024.json", USERS) + chk_kept("/app/data/users.json", USERS)))
    t.append(Task("copy-logs-glob", "copy",
                  "Save every `.log` file from `/app/logs` into a new folder `/app/saved_logs` "
                  "(the originals stay).",
                  files={"/app/logs/a.log": "alpha\n", "/app/logs/b.log": "beta\n", "/app/logs/notes.md": "x\n"},
                  steps=[("list the log folder", "ls /app/logs"),
                         ("make the destination folder", "mkdir -p /app/saved_logs"),
                         ("copy only the .log files", "cp /app/logs/*.log /app/saved_logs/"),
                         ("verify which files were saved", "ls /app/saved_logs")],
                  checks=chk_file("/app/saved_logs/a.log", "alpha\n", "a_log_copied")
                  + chk_file("/app/saved_logs/b.log", "beta\n", "b_log_copied")
                  + chk_gone("/app/saved_logs/notes.md") + chk_kept("/app/logs/a.log", "alpha\n")))

    # --- permissions (chmod) ----------------------------------------------------------------
    t.append(Task("chmod-deploy-script", "chmod",
                  "The script `/app/bin/deploy.sh` cannot be run because it lacks the execute permission. "
                  "Fix that.",
                  files={"/app/bin/deploy.sh": "#!/bin/sh\necho deploying\n"},
                  setup=["chmod 644 /app/bin/deploy.sh"],
                  steps=[("add the execute bit", "chmod +x /app/bin/deploy.sh"),
                         ("look at the new permissions", "ls -l /app/bin/deploy.sh")],
                  checks=chk_exec("/app/bin/deploy.sh")))
    t.append(Task("chmod-token-private", "chmod",
                  "Restrict `/app/secrets/token.txt` so that only its owner can read and write it (mode 600).",
                  files={"/app/secrets/token.txt": "s3cr3t-token\n"},
                  setup=["chmod 666 /app/secrets/token.txt"],
                  steps=[("set owner-only read/write", "chmod 600 /app/secrets/token.txt"),
                         ("confirm the new mode", "ls -l /app/secrets/token.txt")],
                  checks=chk_mode("/app/secrets/token.txt", 0o600)))
    t.append(Task("chmod-readme-readonly", "chmod",
                  "Give `/app/shared/readme.txt` the permission bits 444, so everyone may read it and "
                  "nobody may write it.",
                  files={"/app/shared/readme.txt": "read me\n"},
                  steps=[("apply mode 444", "chmod 444 /app/shared/readme.txt"),
                         ("show the result", "stat -c '%a %n' /app/shared/readme.txt")],
                  checks=chk_mode("/app/shared/readme.txt", 0o444)))
    t.append(Task("chmod-public-folder", "chmod",
                  "The folder `/app/public` currently has mode 700. Change it to 755.",
                  setup=["mkdir -p /app/public", "chmod 700 /app/public"],
                  steps=[("change the folder mode", "chmod 755 /app/public"),
                         ("verify it", "stat -c '%a' /app/public")],
                  checks=chk_mode("/app/public", 0o755)))
    t.append(Task("chmod-scripts-glob", "chmod",
                  "Allow the owner to execute every `.sh` file in `/app/scripts`.",
                  files={"/app/scripts/build.sh": "echo build\n", "/app/scripts/test.sh": "echo test\n"},
                  steps=[("see which scripts exist", "ls -l /app/scripts"),
                         ("add the owner execute bit to all of them", "chmod u+x /app/scripts/*.sh"),
                         ("check the x bits", "ls -l /app/scripts")],
                  checks=chk_exec("/app/scripts/build.sh", "/app/scripts/test.sh")))

    # --- counting (wc) ----------------------------------------------------------------------
    t.append(Task("count-city-lines", "count",
                  "How many lines does `/app/data/cities.txt` have? Write just that number into "
                  "`/app/line_count.txt`.",
                  files={"/app/data/cities.txt": CITIES},
                  steps=[("count the lines; reading from stdin keeps the file name out of the output",
                          "wc -l < /app/data/cities.txt > /app/line_count.txt"),
                         ("check the saved number", "cat /app/line_count.txt")],
                  checks=chk_number("/app/line_count.txt", 7)))
    t.append(Task("count-intro-words", "count",
                  "Count the words in `/app/docs/intro.txt` and save the count, as a bare number, "
                  "in `/app/words.txt`.",
                  files={"/app/docs/intro.txt": INTRO},
                  steps=[("count words from stdin so only the number is printed",
                          "wc -w < /app/docs/intro.txt > /app/words.txt"),
                         ("show it", "cat /app/words.txt")],
                  checks=chk_number("/app/words.txt", len(INTRO.split()))))
    t.append(Task("count-message-bytes", "count",
                  "Store the size in bytes of `/app/msg.txt` in `/app/size.txt` (only the number).",
                  files={"/app/msg.txt": "meet me at the station at nine\n"},
                  steps=[("count the bytes", "wc -c < /app/msg.txt > /app/size.txt"),
                         ("show the number", "cat /app/size.txt")],
                  checks=chk_number("/app/size.txt", len("meet me at the station at nine\n"))))
    t.append(Task("count-inbox-files", "count",
                  "Find out how many files sit directly inside `/app/inbox` and put that number into "
                  "`/app/inbox_count.txt`.",
                  files={f"/app/inbox/mail{i}.eml": f"mail {i}\n" for i in range(1, 6)},
                  steps=[("list the inbox", "ls /app/inbox"),
                         ("count the entries", "ls /app/inbox | wc -l > /app/inbox_count.txt"),
                         ("show the saved count", "cat /app/inbox_count.txt")],
                  checks=chk_number("/app/inbox_count.txt", 5)))
    t.append(Task("count-source-loc", "count",
                  "Record the number of lines of `/app/src/main.py` in `/app/loc.txt`.",
                  files={"/app/src/main.py": MAIN_PY},
                  steps=[("count the lines of the source file", "wc -l < /app/src/main.py > /app/loc.txt"),
                         ("print what was stored", "cat /app/loc.txt")],
                  checks=chk_number("/app/loc.txt", len(MAIN_PY.splitlines()))))

    # --- empty files (touch) ----------------------------------------------------------------
    t.append(Task("touch-ready-marker", "touch",
                  "Signal that setup finished: there must be an empty file `/app/.ready`.",
                  steps=[("an empty marker file is all that is needed", "touch /app/.ready"),
                         ("check it is there", "ls -la /app")],
                  checks=chk_empty("/app/.ready")))
    t.append(Task("touch-three-slots", "touch",
                  "Add three empty placeholder files `a.txt`, `b.txt` and `c.txt` inside the existing folder "
                  "`/app/slots`.",
                  setup=["mkdir -p /app/slots"],
                  steps=[("touch all three at once", "touch /app/slots/a.txt /app/slots/b.txt /app/slots/c.txt"),
                         ("list them", "ls -l /app/slots")],
                  checks=chk_empty("/app/slots/a.txt", "/app/slots/b.txt", "/app/slots/c.txt")))
    t.append(Task("touch-started-flag", "touch",
                  "The service waits for the marker `/app/run/started.flag` to appear. The folder `/app/run` "
                  "exists already; put an empty marker there.",
                  setup=["mkdir -p /app/run"],
                  steps=[("touch the flag file", "touch /app/run/started.flag"),
                         ("see that the flag exists", "ls -l /app/run")],
                  checks=chk_empty("/app/run/started.flag")))
    t.append(Task("touch-log-with-folder", "touch",
                  "Logging needs an empty file `/app/logs/app.log`; the `logs` folder is missing as well.",
                  steps=[("make the missing folder", "mkdir -p /app/logs"),
                         ("then the empty log file", "touch /app/logs/app.log"),
                         ("confirm the file is there and empty", "ls -l /app/logs")],
                  checks=chk_empty("/app/logs/app.log")))

    # --- nested folders (mkdir -p) ----------------------------------------------------------
    t.append(Task("mkdirp-src-utils", "mkdirp",
                  "Set up the folder tree `/app/project/src/utils`, intermediate folders included.",
                  steps=[("-p makes every missing parent", "mkdir -p /app/project/src/utils"),
                         ("show the tree", "find /app/project")],
                  checks=chk_dirs("/app/project/src/utils")))
    t.append(Task("mkdirp-release-bin", "mkdirp",
                  "The build expects the path `/app/build/output/release/bin` to exist as nested folders. "
                  "Make it so.",
                  steps=[("make the whole path in one go", "mkdir -p /app/build/output/release/bin"),
                         ("list the new folders", "find /app/build -type d")],
                  checks=chk_dirs("/app/build/output/release/bin")))
    t.append(Task("mkdirp-month-folders", "mkdirp",
                  "Prepare the nested folders `/app/data/2024/01` and `/app/data/2024/02`.",
                  steps=[("both paths with their parents", "mkdir -p /app/data/2024/01 /app/data/2024/02"),
                         ("check", "ls /app/data/2024")],
                  checks=chk_dirs("/app/data/2024/01", "/app/data/2024/02")))
    t.append(Task("mkdirp-project-layout", "mkdirp",
                  "Lay out a new project under `/app/newproj` with the sub-folders `docs`, `tests` and "
                  "`src/pkg`.",
                  steps=[("make all of them with their parents",
                          "mkdir -p /app/newproj/docs /app/newproj/tests /app/newproj/src/pkg"),
                         ("list the layout", "find /app/newproj -type d")],
                  checks=chk_dirs("/app/newproj/docs", "/app/newproj/tests", "/app/newproj/src/pkg")))

    # --- append a line (>>) -----------------------------------------------------------------
    t.append(Task("append-editor-export", "append",
                  "Add the line `export EDITOR=vim` at the end of `/app/env.sh`, keeping what is already there.",
                  files={"/app/env.sh": "export LANG=C.UTF-8\n"},
                  steps=[(">> appends instead of overwriting", "echo 'export EDITOR=vim' >> /app/env.sh"),
                         ("look at the file now", "cat /app/env.sh")],
                  checks=chk_lines("/app/env.sh", ["export LANG=C.UTF-8", "export EDITOR=vim"])))
    t.append(Task("append-hosts-entry", "append",
                  "Append `127.0.0.1 db.local` as a new last line of `/app/hosts`.",
                  files={"/app/hosts": "127.0.0.1 localhost\n::1 localhost\n"},
                  steps=[("append the entry", "echo '127.0.0.1 db.local' >> /app/hosts"),
                         ("show the file", "cat /app/hosts")],
                  checks=chk_lines("/app/hosts", ["127.0.0.1 localhost", "::1 localhost", "127.0.0.1 db.local"])))
    t.append(Task("append-todo-item", "append",
                  "`/app/todo.md` is a list; add the item `- buy milk` to the end of it.",
                  files={"/app/todo.md": "- fix bike\n- pay rent\n"},
                  steps=[("read the list", "cat /app/todo.md"),
                         ("append the new item", "echo '- buy milk' >> /app/todo.md"),
                         ("read it again", "cat /app/todo.md")],
                  checks=chk_lines("/app/todo.md", ["- fix bike", "- pay rent", "- buy milk"])))
    t.append(Task("append-user-name", "append",
                  "Register the user `grace` by adding her name below the others in `/app/users.txt`.",
                  files={"/app/users.txt": "ada\nlinus\n"},
                  steps=[("append the name", "echo grace >> /app/users.txt"),
                         ("show the user list", "cat /app/users.txt")],
                  checks=chk_lines("/app/users.txt", ["ada", "linus", "grace"])))

    t.append(Task("append-deploy-note", "append",
                  "Record `deploy finished` in the log `/app/logs/deploy.log`, after any lines it already has "
                  "(the log file itself is not there yet; `>>` starts it).",
                  setup=["mkdir -p /app/logs"],
                  steps=[(">> also starts a missing file", "echo 'deploy finished' >> /app/logs/deploy.log"),
                         ("read the log", "cat /app/logs/deploy.log")],
                  checks=chk_lines("/app/logs/deploy.log", ["deploy finished"])))
    t.append(Task("append-shopping-list", "append",
                  "Put `bread` on the shopping list `/app/shopping.txt`; start the list if the file is missing.",
                  steps=[("append it; the file is made if needed", "echo bread >> /app/shopping.txt"),
                         ("show the list", "cat /app/shopping.txt")],
                  checks=chk_lines("/app/shopping.txt", ["bread"])))
    t.append(Task("append-changelog-entry", "append",
                  "Add the entry `v1.2: fixed login bug` to the end of `/app/CHANGELOG`.",
                  files={"/app/CHANGELOG": "v1.0: first release\nv1.1: faster search\n"},
                  steps=[("quote the entry because of the colon and spaces",
                          "echo 'v1.2: fixed login bug' >> /app/CHANGELOG"),
                         ("show the changelog", "cat /app/CHANGELOG")],
                  checks=chk_lines("/app/CHANGELOG", ["v1.0: first release", "v1.1: faster search",
                                                      "v1.2: fixed login bug"])))
    t.append(Task("append-guestbook-thanks", "append",
                  "Sign the guest book `/app/guestbook.txt` with one more line: `Thanks for the tea, Ana!`",
                  files={"/app/guestbook.txt": "Lovely place. Tom\n"},
                  steps=[("single quotes keep the comma and ! as they are",
                          "echo 'Thanks for the tea, Ana!' >> /app/guestbook.txt"),
                         ("read the guest book", "cat /app/guestbook.txt")],
                  checks=chk_lines("/app/guestbook.txt", ["Lovely place. Tom", "Thanks for the tea, Ana!"])))

    # --- overwrite what a file holds (>) ----------------------------------------------------
    t.append(Task("overwrite-status-done", "overwrite",
                  "`/app/status.txt` says `pending`. Replace its text with `done`.",
                  files={"/app/status.txt": "pending\n"},
                  steps=[("a single > replaces what the file held", "echo done > /app/status.txt"),
                         ("read it back", "cat /app/status.txt")],
                  checks=chk_lines("/app/status.txt", ["done"])))
    t.append(Task("overwrite-counter-reset", "overwrite",
                  "Reset the counter kept in `/app/counter.txt` to 0; the old value must go.",
                  files={"/app/counter.txt": "17\n"},
                  steps=[("overwrite the old value", "echo 0 > /app/counter.txt"),
                         ("check the counter", "cat /app/counter.txt")],
                  checks=chk_lines("/app/counter.txt", ["0"])))
    t.append(Task("overwrite-motd-banner", "overwrite",
                  "The login banner `/app/motd` still reads `Good morning`. Change the banner text to "
                  "`Good evening, team!`.",
                  files={"/app/motd": "Good morning\n"},
                  steps=[("single quotes keep the ! literal", "echo 'Good evening, team!' > /app/motd"),
                         ("show the banner", "cat /app/motd")],
                  checks=chk_lines("/app/motd", ["Good evening, team!"])))
    t.append(Task("overwrite-mode-maintenance", "overwrite",
                  "Switch the mode stored in `/app/mode.cfg` from `normal` to `maintenance`.",
                  files={"/app/mode.cfg": "normal\n"},
                  steps=[("look at the current mode", "cat /app/mode.cfg"),
                         ("replace the old word", "echo maintenance > /app/mode.cfg"),
                         ("read the new mode", "cat /app/mode.cfg")],
                  checks=chk_lines("/app/mode.cfg", ["maintenance"])))

    t.append(Task("overwrite-version-bump", "overwrite",
                  "`/app/VERSION` holds `1.4.2`. Bump it to `1.5.0` (the file keeps only the new version).",
                  files={"/app/VERSION": "1.4.2\n"},
                  steps=[("write the new version over the old one", "echo 1.5.0 > /app/VERSION"),
                         ("check the version file", "cat /app/VERSION")],
                  checks=chk_lines("/app/VERSION", ["1.5.0"])))
    t.append(Task("overwrite-owner-note", "overwrite",
                  "The note `/app/OWNER` names a former owner. Replace the note with `Owner: Maria, ops team`.",
                  files={"/app/OWNER": "Owner: Sam\n"},
                  steps=[("> drops the old note", "echo 'Owner: Maria, ops team' > /app/OWNER"),
                         ("show the note", "cat /app/OWNER")],
                  checks=chk_lines("/app/OWNER", ["Owner: Maria, ops team"])))

    # --- delete (rm) ------------------------------------------------------------------------
    t.append(Task("rm-stale-lock", "rm",
                  "Delete the stale lock file `/app/run/app.lock`; leave the pid file alone.",
                  files={"/app/run/app.lock": "", "/app/run/app.pid": "4242\n"},
                  steps=[("see what is in the run folder", "ls /app/run"),
                         ("delete only the lock", "rm /app/run/app.lock"),
                         ("only the pid file should remain", "ls /app/run")],
                  checks=chk_gone("/app/run/app.lock") + chk_kept("/app/run/app.pid", "4242\n")))
    t.append(Task("rm-tmp-files", "rm",
                  "Remove every `.tmp` file in `/app/cache`, but keep the other files there.",
                  files={"/app/cache/x.tmp": "1\n", "/app/cache/y.tmp": "2\n", "/app/cache/index.db": "db\n"},
                  steps=[("list the cache", "ls /app/cache"),
                         ("a glob removes just the .tmp files", "rm /app/cache/*.tmp"),
                         ("check what is left", "ls /app/cache")],
                  checks=chk_gone("/app/cache/x.tmp", "/app/cache/y.tmp") + chk_kept("/app/cache/index.db", "db\n")))
    t.append(Task("rm-old-build-tree", "rm",
                  "Get rid of the folder `/app/old_build` and everything in it.",
                  files={"/app/old_build/obj/a.o": "o\n", "/app/old_build/app": "bin\n"},
                  steps=[("-r removes the folder with its contents", "rm -r /app/old_build"),
                         ("check it is gone", "ls /app")],
                  checks=chk_gone("/app/old_build")))
    t.append(Task("rm-duplicate-spaces", "rm",
                  "The file `/app/notes/draft (copy).txt` is an accidental duplicate of `draft.txt`; delete it.",
                  files={"/app/notes/draft (copy).txt": "draft\n", "/app/notes/draft.txt": "draft\n"},
                  steps=[("the name has spaces and parentheses, so quote it", "rm '/app/notes/draft (copy).txt'"),
                         ("check what is left", "ls /app/notes")],
                  checks=chk_gone("/app/notes/draft (copy).txt") + chk_kept("/app/notes/draft.txt", "draft\n")))

    # --- move / rename (mv) -----------------------------------------------------------------
    t.append(Task("mv-photo-extension", "mv",
                  "Rename `/app/photo.jpeg` to `/app/photo.jpg`.",
                  files={"/app/photo.jpeg": "JPEGDATA\n"},
                  steps=[("mv renames in place", "mv /app/photo.jpeg /app/photo.jpg"),
                         ("list the folder", "ls /app")],
                  checks=chk_file("/app/photo.jpg", "JPEGDATA\n") + chk_gone("/app/photo.jpeg")))
    t.append(Task("mv-pdf-to-documents", "mv",
                  "Move `/app/downloads/report.pdf` into the folder `/app/documents`.",
                  files={"/app/downloads/report.pdf": "PDF\n"}, setup=["mkdir -p /app/documents"],
                  steps=[("move it into the existing folder", "mv /app/downloads/report.pdf /app/documents/"),
                         ("confirm", "ls /app/documents /app/downloads")],
                  checks=chk_file("/app/documents/report.pdf", "PDF\n") + chk_gone("/app/downloads/report.pdf")))
    t.append(Task("mv-rename-folder", "mv",
                  "Rename the folder `/app/tmp_results` to `/app/results`, keeping its files.",
                  files={"/app/tmp_results/run1.txt": "ok\n"},
                  steps=[("rename the folder", "mv /app/tmp_results /app/results"),
                         ("check its content", "ls /app/results")],
                  checks=chk_file("/app/results/run1.txt", "ok\n") + chk_gone("/app/tmp_results")))
    t.append(Task("mv-processed-txt", "mv",
                  "Move all `.txt` files from `/app/incoming` into `/app/processed` (that folder does not exist "
                  "yet).",
                  files={"/app/incoming/one.txt": "1\n", "/app/incoming/two.txt": "2\n"},
                  steps=[("make the destination", "mkdir -p /app/processed"),
                         ("move the text files", "mv /app/incoming/*.txt /app/processed/"),
                         ("check both folders", "ls /app/incoming /app/processed")],
                  checks=chk_file("/app/processed/one.txt", "1\n", "one_moved")
                  + chk_file("/app/processed/two.txt", "2\n", "two_moved")
                  + chk_gone("/app/incoming/one.txt", "/app/incoming/two.txt")))

    # --- sort -------------------------------------------------------------------------------
    t.append(Task("sort-names-alpha", "sort",
                  "Sort the lines of `/app/names.txt` alphabetically and write them to `/app/names_sorted.txt`.",
                  files={"/app/names.txt": NAMES},
                  steps=[("sort into the new file", "sort /app/names.txt > /app/names_sorted.txt"),
                         ("show it", "cat /app/names_sorted.txt")],
                  checks=chk_lines("/app/names_sorted.txt", sorted(NAMES.split()))))
    t.append(Task("sort-scores-numeric", "sort",
                  "Write the numbers from `/app/scores.txt` to `/app/scores_sorted.txt`, smallest first "
                  "(numeric order, not text order).",
                  files={"/app/scores.txt": SCORES},
                  steps=[("-n sorts by numeric value", "sort -n /app/scores.txt > /app/scores_sorted.txt"),
                         ("show the order", "cat /app/scores_sorted.txt")],
                  checks=chk_lines("/app/scores_sorted.txt", [str(x) for x in sorted(map(int, SCORES.split()))])))
    t.append(Task("sort-unique-tags", "sort",
                  "Put the distinct lines of `/app/tags.txt` into `/app/unique_tags.txt`, sorted, each only once.",
                  files={"/app/tags.txt": TAGS},
                  steps=[("look at the tags", "cat /app/tags.txt"),
                         ("-u drops the repeats", "sort -u /app/tags.txt > /app/unique_tags.txt"),
                         ("show the unique tags", "cat /app/unique_tags.txt")],
                  checks=chk_lines("/app/unique_tags.txt", sorted(set(TAGS.split())))))
    t.append(Task("sort-values-descending", "sort",
                  "Produce `/app/desc.txt` with the lines of `/app/values.txt` in descending numeric order.",
                  files={"/app/values.txt": VALUES},
                  steps=[("-r reverses, -n compares as numbers", "sort -rn /app/values.txt > /app/desc.txt"),
                         ("show the result", "cat /app/desc.txt")],
                  checks=chk_lines("/app/desc.txt", [str(x) for x in sorted(map(int, VALUES.split()), reverse=True)])))

    # --- head / tail ------------------------------------------------------------------------
    srv = SERVER_LOG.splitlines()
    t.append(Task("head-first-five", "headtail",
                  "Save the first 5 lines of `/app/logs/server.log` to `/app/first5.txt`.",
                  files={"/app/logs/server.log": SERVER_LOG},
                  steps=[("head takes the top lines", "head -n 5 /app/logs/server.log > /app/first5.txt"),
                         ("print the saved lines", "cat /app/first5.txt")],
                  checks=chk_lines("/app/first5.txt", srv[:5])))
    t.append(Task("tail-recent-history", "headtail",
                  "Keep the last 3 lines of `/app/history.txt` in a new file `/app/recent.txt`.",
                  files={"/app/history.txt": HISTORY},
                  steps=[("tail takes the bottom lines", "tail -n 3 /app/history.txt > /app/recent.txt"),
                         ("show them", "cat /app/recent.txt")],
                  checks=chk_lines("/app/recent.txt", HISTORY.splitlines()[-3:])))
    t.append(Task("head-csv-header", "headtail",
                  "Write the header line (the first line) of `/app/data/table.csv` to `/app/header.txt`.",
                  files={"/app/data/table.csv": TABLE},
                  steps=[("peek at the table", "cat /app/data/table.csv"),
                         ("keep line 1 only", "head -n 1 /app/data/table.csv > /app/header.txt"),
                         ("show the header file", "cat /app/header.txt")],
                  checks=chk_lines("/app/header.txt", ["id,name,price"])))
    t.append(Task("tail-journal-ten", "headtail",
                  "Extract the final 10 lines of `/app/journal.txt` into `/app/tail10.txt`.",
                  files={"/app/journal.txt": JOURNAL},
                  steps=[("take the last ten lines", "tail -n 10 /app/journal.txt > /app/tail10.txt"),
                         ("count them to be sure", "wc -l /app/tail10.txt")],
                  checks=chk_lines("/app/tail10.txt", JOURNAL.splitlines()[-10:])))

    # --- grep -------------------------------------------------------------------------------
    t.append(Task("grep-error-lines", "grep",
                  "Collect the lines of `/app/logs/app.log` that contain `ERROR` into `/app/errors.txt`.",
                  files={"/app/logs/app.log": APP_LOG},
                  steps=[("filter the matching lines", "grep ERROR /app/logs/app.log > /app/errors.txt"),
                         ("show them", "cat /app/errors.txt")],
                  checks=chk_lines("/app/errors.txt", [x for x in APP_LOG.splitlines() if "ERROR" in x])))
    t.append(Task("grep-example-org", "grep",
                  "Write every line of `/app/contacts.txt` that mentions `@example.org` to `/app/example_org.txt`.",
                  files={"/app/contacts.txt": CONTACTS},
                  steps=[("fixed-string match on the domain",
                          "grep -F '@example.org' /app/contacts.txt > /app/example_org.txt"),
                         ("show the matches", "cat /app/example_org.txt")],
                  checks=chk_lines("/app/example_org.txt", [x for x in CONTACTS.splitlines() if "@example.org" in x])))
    t.append(Task("grep-active-settings", "grep",
                  "Save the lines of `/app/config.ini` that are not comments (comments start with `#`) "
                  "to `/app/active.ini`.",
                  files={"/app/config.ini": INI},
                  steps=[("read the config", "cat /app/config.ini"),
                         ("-v keeps the lines that do not match", "grep -v '^#' /app/config.ini > /app/active.ini"),
                         ("print the active settings", "cat /app/active.ini")],
                  checks=chk_lines("/app/active.ini", [x for x in INI.splitlines() if not x.startswith("#")])))
    t.append(Task("grep-ing-ignorecase", "grep",
                  "Find the lines of `/app/words.txt` that contain `ing`, upper or lower case, and store them in "
                  "`/app/ing.txt`.",
                  files={"/app/words.txt": WORDS},
                  steps=[("-i ignores case", "grep -i ing /app/words.txt > /app/ing.txt"),
                         ("show the matches", "cat /app/ing.txt")],
                  checks=chk_lines("/app/ing.txt", [x for x in WORDS.splitlines() if "ing" in x.lower()])))

    # --- symbolic links (ln -s) -------------------------------------------------------------
    t.append(Task("ln-current-release", "symlink",
                  "Make `/app/current` a symbolic link to the release folder `/app/releases/v2`.",
                  files={"/app/releases/v1/VERSION": "1\n", "/app/releases/v2/VERSION": "2\n"},
                  steps=[("see the releases", "ls /app/releases"),
                         ("link name comes last", "ln -s /app/releases/v2 /app/current"),
                         ("check where it points", "ls -l /app/current")],
                  checks=chk_link("/app/current", "/app/releases/v2")))
    t.append(Task("ln-python-shim", "symlink",
                  "Add a symlink `/app/bin/python` that points to `/usr/bin/python3`.",
                  setup=["mkdir -p /app/bin"],
                  steps=[("make the link", "ln -s /usr/bin/python3 /app/bin/python"),
                         ("try it", "/app/bin/python --version")],
                  checks=chk_link("/app/bin/python", "/usr/bin/python3")))
    t.append(Task("ln-production-config", "symlink",
                  "`/app/config.yaml` should be a soft link whose target is `/app/configs/production.yaml`.",
                  files={"/app/configs/production.yaml": "env: prod\n", "/app/configs/dev.yaml": "env: dev\n"},
                  steps=[("symlink the production file", "ln -s /app/configs/production.yaml /app/config.yaml"),
                         ("read through the link", "cat /app/config.yaml")],
                  checks=chk_link("/app/config.yaml", "/app/configs/production.yaml")))
    t.append(Task("ln-latest-log", "symlink",
                  "Provide `/app/latest.log` as a symbolic link pointing at `/app/logs/2024-05-01.log`.",
                  files={"/app/logs/2024-04-30.log": "old\n", "/app/logs/2024-05-01.log": "new\n"},
                  steps=[("link to the newest log", "ln -s /app/logs/2024-05-01.log /app/latest.log"),
                         ("check where the link points", "ls -l /app/latest.log")],
                  checks=chk_link("/app/latest.log", "/app/logs/2024-05-01.log")))

    # --- archives (tar) ---------------------------------------------------------------------
    site = {"index.html": "<h1>hi</h1>\n", "style.css": "h1 {color: red}\n"}
    t.append(Task("tar-pack-site", "tar",
                  "Pack the folder `/app/site` into the gzip-compressed archive `/app/site.tar.gz`.",
                  files={f"/app/site/{k}": v for k, v in site.items()},
                  steps=[("-C keeps /app out of the member names", "tar -czf /app/site.tar.gz -C /app site"),
                         ("list the archive", "tar -tzf /app/site.tar.gz")],
                  checks=chk_tar("/app/site.tar.gz", site, gz=True)))
    bundle = {"readme.txt": "bundle readme\n", "conf/app.ini": "a=1\n"}
    t.append(Task("tar-unpack-bundle", "tar",
                  "Unpack the archive `/app/bundle.tar` into a new folder `/app/unpacked`.",
                  files={f"/tmp/bundle/{k}": v for k, v in bundle.items()},
                  setup=["tar -cf /app/bundle.tar -C /tmp/bundle .", "rm -rf /tmp/bundle"],
                  steps=[("see what the archive holds", "tar -tf /app/bundle.tar"),
                         ("make the target folder", "mkdir -p /app/unpacked"),
                         ("extract into it", "tar -xf /app/bundle.tar -C /app/unpacked"),
                         ("list what came out", "find /app/unpacked -type f")],
                  checks=chk_file("/app/unpacked/readme.txt", bundle["readme.txt"], "readme_extracted")
                  + chk_file("/app/unpacked/conf/app.ini", bundle["conf/app.ini"], "conf_extracted")))
    logs = {"a.log": "first\n", "b.log": "second\n"}
    t.append(Task("tar-logs-plain", "tar",
                  "Bundle the files of `/app/logs` into an uncompressed tar archive `/app/logs.tar`.",
                  files={f"/app/logs/{k}": v for k, v in logs.items()},
                  steps=[("plain tar, no compression flag", "tar -cf /app/logs.tar -C /app logs"),
                         ("list what went in", "tar -tf /app/logs.tar")],
                  checks=chk_tar("/app/logs.tar", logs, gz=False)))
    data = {"points.csv": "x,y\n1,2\n"}
    t.append(Task("tar-extract-tgz", "tar",
                  "Extract the gzip archive `/app/data.tgz` into the folder `/app/dataset`.",
                  files={f"/tmp/ds/{k}": v for k, v in data.items()},
                  setup=["tar -czf /app/data.tgz -C /tmp/ds .", "rm -rf /tmp/ds"],
                  steps=[("make the destination", "mkdir -p /app/dataset"),
                         ("-z for gzip, -C for the target", "tar -xzf /app/data.tgz -C /app/dataset"),
                         ("check", "ls /app/dataset")],
                  checks=chk_file("/app/dataset/points.csv", data["points.csv"])))
    return t


CATEGORY = {"copy": "file-operations", "chmod": "system-administration", "count": "text-processing",
            "touch": "file-operations", "mkdirp": "file-operations", "append": "text-processing", "overwrite": "text-processing",
            "rm": "file-operations", "mv": "file-operations", "sort": "text-processing",
            "headtail": "text-processing", "grep": "text-processing", "symlink": "file-operations",
            "tar": "archives"}


def write(out: Path = OUT) -> list[Task]:
    """Rewrite ``out`` with every training task; return them."""
    tasks = _tasks()
    if out.exists():
        shutil.rmtree(out)
    for task in tasks:
        folder = out / task.name
        (folder / "environment").mkdir(parents=True)
        (folder / "solution").mkdir()
        (folder / "tests").mkdir()
        (folder / "task.toml").write_text(TASK_TOML.format(category=CATEGORY[task.family], family=task.family))
        (folder / "instruction.md").write_text(task.instruction + "\n")
        (folder / "environment" / "Dockerfile").write_text(_dockerfile(task))
        solve = folder / "solution" / "solve.sh"
        solve.write_text(_solve(task))
        solve.chmod(0o755)
        for name in ("test.sh", "checklib.py"):
            shutil.copy2(SHARED_TESTS / name, folder / "tests" / name)
        (folder / "tests" / "check.py").write_text(_check_py(task.checks))
    return tasks


if __name__ == "__main__":
    written = write()
    print(f"{len(written)} training tasks in {len({t.family for t in written})} families -> {OUT}")
