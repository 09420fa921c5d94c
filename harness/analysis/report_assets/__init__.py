"""The HTML report's template, stylesheet and script (package data, read by :mod:`harness.analysis.html`)."""
