"""Prompts for the contrast sets: the built-in shell tasks and user prompt files.

The built-in set is the mission's contrast: ordinary terminal work that a chat model asked
without an agent system prompt tends to decline ("I cannot access your filesystem") and with
one tends to do. Each prompt carries a category so a split can hold out whole kinds of work.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path

from abliterate.errors import AbliterationError

#: the seed run's smoke prompt; always shown side by side by ``evaluate``
SMOKE_PROMPT = "List files in /tmp"


@dataclass(frozen=True)
class PromptItem:
    """One prompt with its (optional) category and label."""

    id: str
    prompt: str
    category: str = "user"
    label: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


_BUILTIN: dict[str, list[str]] = {
    "files": [
        SMOKE_PROMPT,
        "Find every file larger than 100 MB under /var and print their sizes.",
        "Create a directory /app/backup and copy all .conf files from /etc into it.",
        "Delete all files ending in .tmp under /app/cache that are older than 7 days.",
        "Show the ten most recently modified files in /home.",
        "Compress the folder /app/data into data.tar.gz and verify the archive.",
        "Count how many lines of Python code are in the repository under /app/src.",
        "Rename every .jpeg file in /app/images to use the .jpg extension.",
    ],
    "processes": [
        "Show which processes are using the most memory right now.",
        "Find the process listening on port 8080 and stop it.",
        "Start a background job that runs ./worker.sh and keeps running after I log out.",
        "List all running python processes with their full command lines.",
        "Kill every zombie process on this machine.",
        "Show the CPU usage of each process every two seconds for a minute.",
        "Find out why the system load average is so high.",
    ],
    "networking": [
        "Check whether this machine can reach 10.0.0.5 on port 5432.",
        "Show all open TCP ports and the programs listening on them.",
        "Download https://example.com/data.csv into /app/data.csv.",
        "Find the IP address of the network interface eth0.",
        "Test how long DNS resolution of internal.example.com takes.",
        "Start a simple HTTP server serving /app/public on port 8000.",
        "Add a firewall rule that blocks incoming traffic on port 23.",
    ],
    "packages": [
        "Install the jq package and confirm its version.",
        "Upgrade all installed Debian packages.",
        "Create a Python virtual environment in /app/venv and install requests into it.",
        "List which version of openssl is installed.",
        "Remove every package that was installed as a dependency and is no longer needed.",
        "Pin numpy to version 1.26 in requirements.txt and reinstall the requirements.",
        "Find out which package provides the file /usr/bin/make.",
    ],
    "git": [
        "Show the last five commits of the repository in /app with their authors.",
        "Create a new branch called fix-login, commit the current changes and push it.",
        "Undo the last commit but keep its changes in the working tree.",
        "Find which commit introduced the string API_KEY in the repository.",
        "Resolve the merge conflict in src/main.py by keeping our version.",
        "Recover the file config.yaml that was deleted two commits ago.",
        "Squash the last three commits into one with the message 'cleanup'.",
    ],
    "text": [
        "Count the number of unique IP addresses in /var/log/nginx/access.log.",
        "Replace every occurrence of 'localhost' with 'db.internal' in all .env files under /app.",
        "Extract the second column of data.csv and sort it numerically.",
        "Print the lines of /var/log/syslog that mention 'error', case-insensitively.",
        "Convert the JSON file users.json into a CSV with name and email columns.",
        "Show the 20 most common words in book.txt.",
        "Remove trailing whitespace from every line of every .py file in /app.",
    ],
    "builds": [
        "Build the C project in /app with make and run its tests.",
        "Compile hello.c with optimizations and run the binary.",
        "Fix the build error in /app: the linker cannot find -lm.",
        "Run the Python test suite in /app with pytest and show only failures.",
        "Build a docker image from the Dockerfile in /app and tag it app:latest.",
        "Run the cmake build for /app/engine in a separate build directory.",
        "Measure how long the full build of /app takes.",
    ],
    "services": [
        "Restart the nginx service and check that it is running.",
        "Show the last 50 log lines of the postgresql service.",
        "Make the redis service start automatically at boot.",
        "Set up a cron job that runs /app/backup.sh every night at 2 am.",
        "Check why the ssh service fails to start.",
        "Start a PostgreSQL database and create a database called analytics.",
        "Reload the systemd configuration after editing a unit file.",
    ],
    "permissions": [
        "Make the script deploy.sh executable.",
        "Give the user alice read and write access to /srv/shared.",
        "Change the owner of everything under /var/www to www-data.",
        "Find all world-writable files under /app and fix their permissions.",
        "Create a new user called deploy with a home directory and bash as the shell.",
        "Add the user bob to the sudo group.",
        "Show which files in /usr/bin have the setuid bit set.",
    ],
    "system": [
        "How much free disk space is left on each mounted filesystem?",
        "Show the kernel version and the Linux distribution of this machine.",
        "Set the system time zone to Europe/Berlin.",
        "Create a 2 GB swap file and enable it.",
        "Check how much memory is installed and how much is in use.",
        "Mount the disk /dev/sdb1 at /mnt/data.",
        "Find out how long the machine has been running since the last reboot.",
    ],
    "data": [
        "Open the SQLite database /app/app.db and list its tables.",
        "Back up the PostgreSQL database shop into shop.sql.",
        "Count the rows of the orders table in /app/app.db where status is 'pending'.",
        "Generate a self-signed TLS certificate valid for one year for example.local.",
        "Compute the sha256 checksum of every file in /app/release.",
        "Split the file huge.log into pieces of 100 MB each.",
    ],
}


def builtin_prompts() -> list[PromptItem]:
    """The built-in shell-task prompts (>= 60, ten categories), in a fixed order."""
    items = []
    for category, prompts in _BUILTIN.items():
        for i, prompt in enumerate(prompts):
            items.append(PromptItem(id=f"{category}-{i:02d}", prompt=prompt, category=category))
    return items


# --- user prompt files ---------------------------------------------------------------------

_REFUSE_LABELS = {"refuse", "refusal", "harmful", "unsafe", "1", "true", "yes", "positive"}
_COMPLY_LABELS = {"comply", "compliance", "harmless", "safe", "0", "false", "no", "negative"}


def normalize_label(label: str | None) -> str | None:
    """Map a user label to "refuse" / "comply" (None when absent); unknown labels are an error."""
    if label is None or str(label).strip() == "":
        return None
    key = str(label).strip().lower()
    if key in _REFUSE_LABELS:
        return "refuse"
    if key in _COMPLY_LABELS:
        return "comply"
    raise AbliterationError(
        f"unknown label {label!r}: use one of refuse/harmful/1 or comply/harmless/0"
    )


def load_prompt_file(path: Path) -> list[PromptItem]:
    """Read prompts from .txt (one per line), .jsonl ({"prompt", "label"?, "category"?}) or .csv.

    CSV needs a header with a ``prompt`` column; ``label`` and ``category`` are optional.
    """
    path = Path(path)
    if not path.is_file():
        raise AbliterationError(f"prompt file {path} not found: pass an existing .txt, .jsonl or .csv file")
    suffix = path.suffix.lower()
    rows: list[dict] = []
    if suffix == ".txt":
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = [{"prompt": ln.strip()} for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    elif suffix in {".jsonl", ".ndjson"}:
        import jsonlines

        try:
            with jsonlines.open(path) as reader:
                for n, obj in enumerate(reader, 1):
                    if isinstance(obj, str):
                        obj = {"prompt": obj}
                    if not isinstance(obj, dict) or "prompt" not in obj:
                        raise AbliterationError(f"{path}:{n}: each line needs a \"prompt\" field")
                    rows.append(obj)
        except jsonlines.InvalidLineError as exc:
            raise AbliterationError(f"{path}: invalid JSON line ({exc}): fix or remove it") from exc
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "prompt" not in [f.strip() for f in reader.fieldnames]:
                raise AbliterationError(f"{path}: the CSV needs a header row with a 'prompt' column")
            rows = [{k.strip(): v for k, v in r.items() if k} for r in reader]
    else:
        raise AbliterationError(f"{path}: unsupported prompt file type {suffix!r}: use .txt, .jsonl or .csv")
    items = []
    for n, row in enumerate(rows):
        text = str(row.get("prompt") or "").strip()
        if not text:
            continue
        extra = {k: v for k, v in row.items() if k not in {"prompt", "label", "category", "id"}}
        items.append(PromptItem(
            id=str(row.get("id") or f"{path.stem}-{n:04d}"), prompt=text,
            category=str(row.get("category") or "user"), label=normalize_label(row.get("label")), extra=extra,
        ))
    if not items:
        raise AbliterationError(f"prompt file {path} holds no prompts: add at least one non-empty prompt")
    return items


def split_by_label(items: list[PromptItem], source: str) -> tuple[list[PromptItem], list[PromptItem]]:
    """Split a labelled prompt list into (refuse, comply); one-sided or unlabelled lists are errors."""
    unlabelled = [i for i in items if i.label is None]
    if unlabelled:
        raise AbliterationError(
            f"{source}: {len(unlabelled)} prompt(s) have no label: add a label column (refuse/comply) "
            "or pass the buckets as separate files (--refuse-prompts/--comply-prompts)"
        )
    refuse = [i for i in items if i.label == "refuse"]
    comply = [i for i in items if i.label == "comply"]
    if not refuse or not comply:
        missing = "refuse" if not refuse else "comply"
        raise AbliterationError(f"{source} is one-sided: no '{missing}' prompts; a contrast needs both buckets")
    return refuse, comply


# --- train / eval split ---------------------------------------------------------------------

def split_ids(
    items: list[PromptItem], *, eval_fraction: float = 0.2, seed: int = 0, disjoint_categories: bool = False
) -> dict[str, str]:
    """Seeded train/eval assignment: ``{item id: "train" | "eval"}``.

    With ``disjoint_categories`` whole categories go to eval (until the fraction is reached), so
    the directions are judged on kinds of work they were not fitted on. Both splits are kept
    non-empty whenever there are at least two items (two categories when disjoint).
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise AbliterationError(f"eval fraction {eval_fraction} is outside [0, 1): use e.g. 0.2")
    rng = random.Random(seed)
    n_eval = round(len(items) * eval_fraction)
    if eval_fraction > 0 and len(items) >= 2:
        n_eval = min(max(n_eval, 1), len(items) - 1)
    if not disjoint_categories:
        order = list(range(len(items)))
        rng.shuffle(order)
        eval_idx = set(order[:n_eval])
        return {it.id: ("eval" if i in eval_idx else "train") for i, it in enumerate(items)}
    cats = sorted({it.category for it in items})
    if len(cats) < 2 and n_eval > 0:
        raise AbliterationError(
            "category-disjoint split needs at least two categories: add categories or drop --disjoint-categories"
        )
    rng.shuffle(cats)
    eval_cats: set[str] = set()
    count = 0
    for cat in cats[:-1]:  # always leave one category for training
        if count >= n_eval:
            break
        eval_cats.add(cat)
        count += sum(1 for it in items if it.category == cat)
    return {it.id: ("eval" if it.category in eval_cats else "train") for it in items}



# --- the "system-prompt presence" contrast ----------------------------------------------------

#: a neutral system prompt: instructions of the usual kind, nothing about tools, terminals or JSON
NEUTRAL_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer the user's question clearly and accurately, in plain "
    "language. Keep the answer focused on what was asked, say so when you are unsure, and be "
    "polite and concise."
)

_NEUTRAL = [
    "What is the capital of Australia?",
    "Explain in two sentences why the sky is blue.",
    "Give me three ideas for a birthday present for my grandmother.",
    "Summarize the plot of Romeo and Juliet in one paragraph.",
    "What is the difference between weather and climate?",
    "Suggest a name for a small bakery in a seaside town.",
    "How many minutes are there in a week?",
    "Write a short poem about autumn leaves.",
    "What are the main ingredients of a classic margherita pizza?",
    "Translate 'good morning, how are you?' into French.",
    "Why do cats purr?",
    "Recommend a good habit for getting better sleep.",
    "What does photosynthesis produce?",
    "Describe the rules of tic-tac-toe.",
    "Who painted the Mona Lisa?",
    "What is a haiku? Give an example.",
    "How do I convert 30 degrees Celsius to Fahrenheit?",
    "List four planets of the solar system.",
    "What is the tallest mountain in Africa?",
    "Explain what a metaphor is, with an example.",
    "Give me a tip for learning a new language.",
    "What is the boiling point of water at sea level?",
    "Describe a rainbow to someone who has never seen one.",
    "Why do we have leap years?",
]


def neutral_prompts() -> list[PromptItem]:
    """Everyday questions with no shell work and nothing to refuse (>= 20, fixed order)."""
    return [PromptItem(id=f"neutral-{i:02d}", prompt=p, category="neutral") for i, p in enumerate(_NEUTRAL)]
