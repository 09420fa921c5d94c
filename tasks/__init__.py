"""The bundled offline tasks (Terminal-Bench 2 format), shipped as ``ablbench.bundled_tasks``."""
