"""Bake a GGUF file: the llama.cpp-named writers, their quantized bytes, the streamed writer.

Rules, in order:
1. :func:`abliterate.bake.gguf.writer.bake_gguf` is the entry point (called by ``bake.run.bake``
   for a ``.gguf`` model); it takes the same options and writes the same report.
2. Modules import one way: ``writer`` > ``codec`` | ``keys``; all three may use the format-free
   parts of :mod:`abliterate.bake` (never ``bake.run``).
"""
