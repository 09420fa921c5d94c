"""What a GGUF file says about itself, read from its header (no tensor data is loaded).

Rules, in order:

1. A file is a GGUF when its first four bytes are ``GGUF``; anything else (an HF folder, a
   safetensors file, a missing path) is refused with the fix in the message.
2. The header is read with the ``gguf`` library's ``GGUFReader`` (a memory map: cheap even for
   large files).
3. Facts: architecture, ``general.name``, the trained context length (``<arch>.context_length``),
   the chat template and a digest of the tokenizer (tokens, merges, special ids) so two
   files can be compared, and any ``abliteration.*`` provenance keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"
_TOKENIZER_PREFIX = "tokenizer.ggml."


class GGUFError(ValueError):
    """The path is not a readable GGUF file (the message names the fix)."""


@dataclass(frozen=True)
class GGUFFacts:
    """Header facts of one GGUF file."""

    path: Path
    architecture: str | None
    name: str | None
    context_length: int | None
    chat_template: str | None
    tokenizer_digest: str
    abliteration: dict[str, Any] = field(default_factory=dict)
    sft: dict[str, Any] = field(default_factory=dict)  # ``sft.*`` keys of a model from ``ablbench sft``


def has_gguf_magic(path: Path) -> bool:
    """True when ``path`` is a file starting with the GGUF magic."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_facts(path: Path) -> GGUFFacts:
    """The header facts of ``path``; :class:`GGUFError` when it is not a readable GGUF."""
    path = Path(path)
    if path.is_dir():
        raise GGUFError(f"{path} is a folder (a Hugging Face model?), not a GGUF file")
    if not path.is_file():
        raise GGUFError(f"{path} does not exist: pass a .gguf file")
    if not has_gguf_magic(path):
        raise GGUFError(f"{path} is not a GGUF file (no GGUF magic in its first bytes)")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)
    except Exception as exc:  # noqa: BLE001 - the library raises many kinds on a damaged file
        raise GGUFError(f"{path}: cannot read the GGUF header ({type(exc).__name__}: {exc})") from exc
    values = {key: _value(f) for key, f in reader.fields.items()}
    arch = values.get("general.architecture")
    context = values.get(f"{arch}.context_length") if arch else None
    digest = hashlib.sha256()
    for key in sorted(k for k in reader.fields if k.startswith(_TOKENIZER_PREFIX)):
        digest.update(key.encode())
        for part in reader.fields[key].data:
            digest.update(bytes(reader.fields[key].parts[part]))
    return GGUFFacts(
        path=path,
        architecture=arch if isinstance(arch, str) else None,
        name=values.get("general.name") if isinstance(values.get("general.name"), str) else None,
        context_length=int(context) if isinstance(context, int) else None,
        chat_template=values.get("tokenizer.chat_template") if isinstance(values.get("tokenizer.chat_template"), str) else None,
        tokenizer_digest=digest.hexdigest()[:16],
        abliteration={k: v for k, v in values.items() if k.startswith("abliteration.")},
        sft={k: v for k, v in values.items() if k.startswith("sft.")},
    )


def _value(field: Any) -> Any:
    """A scalar or string field's value (arrays of strings/numbers as lists; None when unreadable)."""
    try:
        value = field.contents()
    except Exception:  # noqa: BLE001 - odd field types: not needed here
        return None
    if hasattr(value, "item"):
        value = value.item()
    return value
