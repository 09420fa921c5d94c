"""tmux key names: a keystroke string that is exactly one of them is sent as a key, not typed."""

from __future__ import annotations

import re

#: tmux key names sent as keys (not typed literally) when a keystroke string is exactly one of them
_KEY_NAME_RE = re.compile(
    r"^(?:(?:[CMS]-)+(?:[A-Za-z0-9\\\[\]@^_/? ]|Space|Enter|Tab|BSpace|Up|Down|Left|Right)"
    r"|Enter|Escape|Tab|BTab|BSpace|Space|Up|Down|Left|Right|Home|End|IC|DC|Insert|Delete"
    r"|PageUp|PageDown|PgUp|PgDn|PPage|NPage|F(?:[1-9]|1[0-2]))$"
)


def is_key_name(keystrokes: str) -> bool:
    """True when ``keystrokes`` is exactly one tmux key name (``C-c``, ``Enter``, ``Escape``...)."""
    return bool(_KEY_NAME_RE.match(keystrokes))
