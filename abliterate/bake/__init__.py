"""Bake: edit a checkpoint's weights along a direction, streamed, with a provenance report.

Rules, in order:
1. :func:`abliterate.bake.run.bake` is the entry point; a safetensors folder is baked there, a
   ``.gguf`` file in :mod:`abliterate.bake.gguf` (loaded only then: ``gguf`` is an optional extra).
2. Modules import one way: ``run`` > ``gguf`` > ``common`` | ``hashes`` | ``math`` | ``direction`` > ``io`` >
   ``stream`` | ``profile`` | ``keys`` > ``errors`` (checked by import-linter).
3. Nothing here imports the search, the evaluation or the pipeline; this ``__init__`` imports
   nothing, so ``abliterate.bake.profile`` is cheap to import.
"""
