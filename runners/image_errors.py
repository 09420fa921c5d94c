"""The error of finding or preparing a task's image (the bottom of runners.images and
runners.runtime_image, so that neither imports the other's error from it)."""

from __future__ import annotations


class ImageError(RuntimeError):
    """The task's image could not be found, pulled or built (an infrastructure error)."""
