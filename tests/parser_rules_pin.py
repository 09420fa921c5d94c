"""The parser's outputs on the corpus, per case, and the pin that ties them to ``RULES_VERSION``.

``python tests/parser_rules_pin.py`` re-pins tests/parser_corpus/rules_pin.json: it adds new
corpus cases, and refuses to change a pinned case's output unless ``harness.parser.RULES_VERSION``
was bumped (then it pins the whole corpus under the new version).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

CORPUS_DIR = Path(__file__).parent / "parser_corpus"
PIN_FILE = CORPUS_DIR / "rules_pin.json"


def case_outputs() -> dict[str, str]:
    """Per corpus case: a short hash of everything ``parse_action`` returns, plain and as a cut-off reply."""
    from harness.parser import parse_action

    out = {}
    for case in json.loads((CORPUS_DIR / "cases.json").read_text()):
        both = [parse_action(case["text"]).to_dict(), parse_action(case["text"], cut_off=True).to_dict()]
        out[case["name"]] = hashlib.sha256(json.dumps(both, sort_keys=True).encode()).hexdigest()[:16]
    return out


def changed_cases(pin: dict, outputs: dict[str, str]) -> list[str]:
    """Pinned cases whose output is no longer the pinned one."""
    return sorted(n for n, h in pin["outputs"].items() if n in outputs and outputs[n] != h)


def main() -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from harness.parser import RULES_VERSION

    outputs = case_outputs()
    pin = json.loads(PIN_FILE.read_text()) if PIN_FILE.exists() else {"rules_version": RULES_VERSION, "outputs": {}}
    changed = changed_cases(pin, outputs)
    if changed and pin["rules_version"] == RULES_VERSION:
        print(f"the parser's output changed on {len(changed)} corpus case(s) ({', '.join(changed[:5])}): "
              f"bump harness.parser.RULES_VERSION (now {RULES_VERSION}) first", file=sys.stderr)
        return 1
    PIN_FILE.write_text(json.dumps({"rules_version": RULES_VERSION, "outputs": outputs}, indent=1, sort_keys=True)
                        + "\n")
    print(f"pinned {len(outputs)} cases under rules version {RULES_VERSION}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
