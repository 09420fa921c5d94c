"""``ablbench view``: the HTML report served on 127.0.0.1, refreshed as trials finish.

Rules, in order:

1. One page: the same :func:`harness.analysis.html.page_data` and :func:`~harness.analysis.html.render`
   as ``analyze --html``, with ``live`` on. No trial is embedded: the page fetches
   ``/api/trial?key=`` when a cell is opened and polls ``/api/state?v=<version>``.
2. The version is a hash of the size and mtime of each run's ``master_summary.csv`` and
   ``run.json`` and of every trial folder's ``result.json`` and ``trace.jsonl``; an unchanged version
   answers ``{"changed": false}`` and costs a few ``stat`` calls.
3. The statistics and figures are rebuilt only when a summary or run.json changed. A run that has
   no finished trial yet is shown with an empty column; when no analysis can be made yet (no
   shared task), the page says why instead of failing.
4. The server listens on 127.0.0.1 only, answers only requests addressed to 127.0.0.1 or localhost
   (no DNS rebinding), and serves nothing but the page and its two JSON answers; ``/api/trial``
   answers only for trials the page lists.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ablbench.errors import AblbenchError
from ablbench.results import RUN_FILE, SUMMARY_FILE, read_run_meta
from harness.analysis.model import Run
from harness.analysis_options import ViewOptions

HOST = "127.0.0.1"


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path}:-"
    return f"{path}:{st.st_size}:{st.st_mtime_ns}"


def _name_of(path: Path) -> str:
    meta = read_run_meta(path) if path.is_dir() else {}
    for key in ("name", "run_id"):
        if isinstance(meta.get(key), str) and meta[key]:
            return meta[key]
    return path.resolve().name or "run"


class LiveReport:
    """The runs behind one served page; every method is safe to call from several threads."""

    def __init__(self, paths: list[Path], names: list[str | None], options: ViewOptions = ViewOptions()) -> None:
        self.paths = [Path(p) for p in paths]
        self.names = names
        self.options = options
        self._lock = threading.Lock()
        self._plots_dir = tempfile.TemporaryDirectory(prefix="ablbench-view-")
        self._summary_sig: str | None = None
        self._analysis: tuple[dict | None, str | None, list[Path]] = (None, None, [])
        self._version: str | None = None
        self._data: dict | None = None
        self._runs: list[Run] = []
        self._plots_note: str | None = None

    def close(self) -> None:
        """Remove the figures folder."""
        self._plots_dir.cleanup()

    # -- reading -------------------------------------------------------------------------
    def _signatures(self) -> tuple[str, str]:
        """(summary signature, full version) of the folders as they are now."""
        summary, full = [], []
        for path in self.paths:
            folder = path if path.is_dir() else path.parent
            heads = [_stamp(path)] if path.is_file() else [_stamp(folder / SUMMARY_FILE), _stamp(folder / RUN_FILE)]
            summary += heads
            full += heads
            if path.is_dir():
                full += sorted(_stamp(p) for pattern in ("*/*/result.json", "*/*/trace.jsonl")
                               for p in folder.glob(pattern))
        digest = lambda parts: hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]  # noqa: E731
        return digest(summary), digest(full)

    def _load_runs(self) -> tuple[list[Run], list[str]]:
        from harness.analysis.loaders import load_run

        runs, problems = [], []
        for path, name in zip(self.paths, self.names, strict=True):
            try:
                runs.append(load_run(path, name))
            except AblbenchError as exc:
                if not path.is_dir():
                    raise
                runs.append(Run(name or _name_of(path), path, "results", []))
                problems.append(str(exc))
        return runs, problems

    def _analyse(self, runs: list[Run], problems: list[str]) -> tuple[dict | None, str | None, list[Path]]:
        from harness.analysis import AnalyzeOptions, analyze
        from harness.analysis.html import draw_plots

        try:
            res = analyze(runs, AnalyzeOptions(solved=self.options.solved,
                                               allow_harness_drift=self.options.allow_harness_drift,
                                               allow_task_drift=self.options.allow_task_drift))
        except AblbenchError as exc:
            waiting = [r.name for r in runs if not r.trials]
            why = f"no finished trial yet in {', '.join(waiting)}" if waiting else str(exc)
            return None, why, []
        out = Path(self._plots_dir.name)
        for old in out.glob("*.png"):
            old.unlink()
        drawn, self._plots_note = draw_plots(res, out)
        return res, ("; ".join(problems) or None), drawn

    def state(self) -> tuple[str, dict, dict | None]:
        """(version, page data, analysis) for the folders as they are now; rebuilt only when they changed."""
        from harness.analysis.html import page_data

        with self._lock:
            summary_sig, version = self._signatures()
            if version != self._version or self._data is None:
                runs, problems = self._load_runs()
                if summary_sig != self._summary_sig:
                    self._analysis = self._analyse(runs, problems)
                    self._summary_sig = summary_sig
                res, error, plots = self._analysis
                data = page_data(runs, res, plots, live=True, analysis_error=error, poll_s=self.options.poll,
                                 plots_note=self._plots_note)
                data["version"] = version
                self._runs, self._data, self._version = runs, data, version
            return self._version, self._data, self._analysis[0]

    def page(self) -> str:
        """The whole page for the folders as they are now."""
        from harness.analysis.html import render
        from harness.analysis.report import to_json

        _, data, res = self.state()
        return render(data, to_json(res) if res else None, None)

    def trial(self, key: str) -> dict | None:
        """One trial's record, read now (a running trial shows its turns so far)."""
        from harness.analysis.html import load_trial

        _, data, _ = self.state()
        if not any(c["key"] == key and c.get("trace") for cells in data["cells"] for c in cells):
            return None  # only trials the page lists: a key never names an arbitrary folder
        with self._lock:
            runs = list(self._runs)
        return load_trial(runs, key)


class _Handler(BaseHTTPRequestHandler):
    report: LiveReport  # set on the subclass made by make_server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # quiet: the terminal shows the URL, not one line per poll

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        self._send(status, json.dumps(value, default=str).encode("utf-8"), "application/json; charset=utf-8")

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        if host not in (HOST, "localhost"):  # a page on another site that rebinds its name to 127.0.0.1
            self._json({"error": f"unexpected Host {host!r}; open http://{HOST}:<port>/"}, 403)
            return
        try:
            if url.path in ("/", "/index.html"):
                self._send(200, self.report.page().encode("utf-8"), "text/html; charset=utf-8")
            elif url.path == "/api/state":
                version, data, res = self.report.state()
                if query.get("v", [""])[0] == version:
                    self._json({"changed": False, "version": version})
                else:
                    self._json({"changed": True, "version": version, "data": data, "analysis": res})
            elif url.path == "/api/trial":
                record = self.report.trial(query.get("key", [""])[0])
                self._json(record if record is not None else {"error": "no such trial"}, 200 if record else 404)
            else:
                self._json({"error": "not found"}, 404)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except AblbenchError as exc:
            self._json({"error": str(exc)}, 500)


def make_server(report: LiveReport, port: int = 8765) -> ThreadingHTTPServer:
    """An HTTP server for ``report`` on 127.0.0.1:``port`` (0 picks a free port); not started yet."""
    handler = type("ReportHandler", (_Handler,), {"report": report})
    try:
        server = ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise AblbenchError(f"cannot listen on {HOST}:{port} ({exc.strerror}); pass another --port, "
                            "or --port 0 for a free one") from None
    server.daemon_threads = True
    return server


def open_live_report(runs: list[Path], o: ViewOptions) -> tuple[LiveReport, ThreadingHTTPServer]:
    """``ablbench view``: the checked runs' live report and its (not yet started) server on 127.0.0.1."""
    from harness.analysis import SOLVED_RULES
    from harness.analysis.options import run_labels

    labels = run_labels(o.names, len(runs))
    if o.solved not in SOLVED_RULES:
        raise AblbenchError(f"unknown --solved rule {o.solved!r}; use one of {', '.join(SOLVED_RULES)}")
    if o.poll <= 0:
        raise AblbenchError(f"--poll {o.poll} must be above 0 seconds")
    missing = [str(p) for p in runs if not p.exists()]
    if missing:
        raise AblbenchError(f"{', '.join(missing)}: no such file or folder; pass results folders written by "
                            "`ablbench run` (they may still be running)")
    report = LiveReport(runs, labels, o)
    report.state()  # fail now, not in the browser, on a folder that cannot be read
    return report, make_server(report, o.port)
