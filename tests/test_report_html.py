"""The HTML report (``analyze --html``, ``ablbench view``) driven through its DOM in a real headless
Chromium: the matrix and its colours, the filters, a trial's turns, the side-by-side view, no network.

The results folders are demo-like (the bundled tasks; runs base, sft, abliterated) and written
with the runner's own writers; the page's screenshots go to ``$ABLBENCH_ARTIFACTS`` (default
``results/artifacts/``), which is not committed.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import CliRunner
from conftest import missing
from report_helpers import REPO, Browser, TrialPlan, Turn, chrome_missing, screen, write_run, write_trial

from ablbench.paths import BUNDLED_TASKS
from harness.cli import app

RUNS = ["base", "sft", "abliterated"]
OUTCOMES = {  # task: (base, sft, abliterated)
    "exact-calculator": ("failed", "failed", "passed"),
    "fix-c-build": ("parse_fail_exhausted", "failed", "failed"),
    "git-recover-commit": ("failed", "failed", "passed"),
    "hello-world": ("passed", "passed", "passed"),
    "kv-http-service": ("agent_timeout", "agent_timeout", "failed"),
    "log-traffic-report": ("failed", "failed", "failed"),
    "make-output-dir": ("passed", "failed", "passed"),
    "photo-organizer-script": ("failed", "failed", "infra_error"),
    "sales-csv-summary": ("failed", "verifier_error", "failed"),
    "sqlite-top-customers": ("failed", "passed", "failed"),
    "tls-selfsigned-cert": ("failed", "llm_error", "context_exceeded"),
    "webapp-permissions": ("failed", "failed", "failed"),
}
#: the two trials the turn-level tests look at
GIT_ABL = [
    Turn(["git reflog\n"], screen("3f2a1bc HEAD@{0}: reset: moving to HEAD~1", "9d8e7f6 HEAD@{1}: commit: add feature"),
         reasoning="The commit was lost by a reset; the reflog still has it.", warnings=["added a missing closing brace"]),
    Turn(["git cherry-pick 9d8e7f6\n", "git log --oneline | head -3\n"], screen("9d8e7f6 add feature", "3f2a1bc init")),
    Turn([], screen(), task_complete=True),
]
GIT_BASE = [
    Turn(["git status\n"], screen("On branch main", "nothing to commit, working tree clean")),
    Turn(["git log --oneline\n"], screen("3f2a1bc init")),
]
LONG_OBSERVATION = "\n".join(f"192.168.0.{i % 250} - - [10/Oct/2024:13:55:{i % 60:02d}] GET /x/{i} 200" for i in range(900))


def _turns(run: str, task: str, outcome: str) -> list[Turn]:
    if (run, task) == ("abliterated", "git-recover-commit"):
        return GIT_ABL
    if (run, task) == ("base", "git-recover-commit"):
        return GIT_BASE
    if (run, task) == ("sft", "log-traffic-report"):
        return [Turn(["cat /app/access.log\n"], LONG_OBSERVATION)]
    if outcome == "parse_fail_exhausted":
        return [Turn([], screen(), status="parse_fail", error="no JSON object found in the reply")] * 3
    if outcome in ("infra_error", "llm_error"):
        return []
    if outcome == "agent_timeout":
        return [Turn(["sleep 30\n"], screen("$ sleep 30"))] * 4
    return [Turn(["ls -la\n"], screen("total 0")), Turn(["echo done\n"], screen("done"), task_complete=True)]


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("demo")
    folders = []
    for i, run in enumerate(RUNS):
        plans = [TrialPlan(task, outs[i], _turns(run, task, outs[i]),
                           error="" if outs[i] in ("passed", "failed") else f"{outs[i]}: see runner.stdout")
                 for task, outs in OUTCOMES.items()]
        folders.append(write_run(root / run, run, plans, model=f"smollm2-{run}"))
    return folders


@pytest.fixture(scope="module")
def report(demo_results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    res = CliRunner().invoke(app, ["analyze", *map(str, demo_results), "--json", str(out / "report.json"),
                                   "--html", str(out / "report.html")])
    assert res.exit_code == 0, res.output
    assert f"wrote {out / 'report.html'}" in res.output
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    why = chrome_missing()
    if why:
        missing(why)
    b = Browser()
    yield b
    b.quit()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = Path(os.environ.get("ABLBENCH_ARTIFACTS") or REPO / "results" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, report):
    """The static report freshly opened from disk (file://), with the request log cleared."""
    d = browser.driver
    d.get(report.as_uri())
    _wait(d, "return document.documentElement.dataset.ready === '1'")
    return d


def _wait(driver, script: str, timeout: float = 20.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: d.execute_script(script))


def _by_css(driver, css: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def _tab(driver, name: str) -> None:
    _by_css(driver, f"#tabbtn-{name}")[0].click()


def _visible_tasks(driver) -> list[str]:
    return [tr.get_attribute("data-task") for tr in _by_css(driver, "#matrix-table tbody tr") if tr.is_displayed()]


# ---------------------------------------------------------------- the file itself


def test_report_is_one_file_with_the_analysis_json_and_cut_marked_trials(report):
    html = report.read_text(encoding="utf-8")
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert csp.startswith("default-src &#x27;none&#x27;; img-src data:;") and "unsafe-inline" not in csp
    assert not re.search(r'(src|href)="(?!data:)[^"#]', html), "every src/href must be data: or a fragment"
    embedded = re.search(r'<script type="application/json" id="analysis-json">(.*?)</script>', html, re.S).group(1)
    assert json.loads(embedded) == json.loads((report.parent / "report.json").read_text())
    blobs = dict(re.findall(r'<script type="application/gzip\+base64" data-trial="([^"]+)">([^<]+)</script>', html))
    assert len(blobs) == 3 * len(OUTCOMES)
    long = json.loads(gzip.decompress(base64.b64decode(blobs["1|log-traffic-report|1"])))
    obs = long["turns"][0]["observation"]
    assert len(obs) < len(LONG_OBSERVATION) / 5 and re.search(r"⋯ \[\d+ characters cut\] ⋯", obs)
    assert obs.endswith(LONG_OBSERVATION[-500:])  # the end of a terminal screen is kept
    data = json.loads(re.search(r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S).group(1))
    assert [p["name"] for p in data["plots"]] == [
        "pass_rates.png", "overlap_upset.png", "overlap_venn.png", "behaviour_runs.png",
        "behaviour_diff_base_vs_sft.png", "behaviour_diff_base_vs_abliterated.png",
        "behaviour_diff_sft_vs_abliterated.png"]
    assert report.stat().st_size < 1_000_000


# ---------------------------------------------------------------- in the browser


def test_matrix_renders_runs_by_tasks_with_outcome_colours(page):
    _tab(page, "matrix")
    heads = [th.get_attribute("data-run") for th in _by_css(page, "#matrix-table thead th[data-run]")]
    assert heads == RUNS
    rows = _by_css(page, "#matrix-table tbody tr")
    assert [r.get_attribute("data-task") for r in rows] == sorted(OUTCOMES)
    swatch = {chip.get_attribute("data-outcome"): chip.find_element("css selector", ".sw").value_of_css_property(
        "background-color") for chip in _by_css(page, "#outcome-filter .chip")}
    expected = {o for outs in OUTCOMES.values() for o in outs}
    assert set(swatch) == expected and len(set(swatch.values())) == len(expected)  # one colour per outcome
    for row in rows:
        task = row.get_attribute("data-task")
        cells = row.find_elements("css selector", "button.cell")
        assert [c.get_attribute("data-outcome") for c in cells] == list(OUTCOMES[task])
        for cell, outcome in zip(cells, OUTCOMES[task], strict=True):
            assert cell.value_of_css_property("background-color") == swatch[outcome], (task, outcome)
    r, g, b = map(int, re.findall(r"\d+", swatch["passed"])[:3])
    assert g > r + 40 and g > b + 40  # passed is green
    r, g, b = map(int, re.findall(r"\d+", swatch["failed"])[:3])
    assert r > g + 20 and r > b + 20  # failed is red


def test_outcome_and_region_filters_hide_the_right_rows(page):
    _tab(page, "matrix")
    chip = _by_css(page, '#outcome-filter .chip[data-outcome="agent_timeout"]')[0]
    chip.click()
    assert _visible_tasks(page) == ["kv-http-service"]
    _by_css(page, '#outcome-filter .chip[data-outcome="passed"]')[0].click()  # either outcome
    with_pass = sorted(t for t, outs in OUTCOMES.items() if "passed" in outs)
    assert _visible_tasks(page) == sorted({"kv-http-service", *with_pass})
    assert page.find_element("id", "shown-count").text == f"showing {len(with_pass) + 1} of {len(OUTCOMES)} tasks"
    chip.click()
    _by_css(page, '#outcome-filter .chip[data-outcome="passed"]')[0].click()
    assert _visible_tasks(page) == sorted(OUTCOMES)
    from selenium.webdriver.support.select import Select

    Select(page.find_element("id", "region-filter")).select_by_value("abliterated only")
    assert _visible_tasks(page) == ["exact-calculator", "git-recover-commit"]
    Select(page.find_element("id", "region-filter")).select_by_value("solved by none")
    assert _visible_tasks(page) == sorted(t for t, outs in OUTCOMES.items() if "passed" not in outs)


def test_clicking_a_cell_shows_that_trials_turns_and_commands(page):
    _tab(page, "matrix")
    _by_css(page, 'button.cell[data-key="2|git-recover-commit|1"]')[0].click()
    _wait(page, "return document.querySelectorAll('#trial-panel .turn').length > 0")
    panel = page.find_element("id", "trial-panel")
    assert panel.find_element("css selector", ".trial-title").text == "abliterated · git-recover-commit · attempt 1"
    assert panel.find_element("css selector", ".badge.outcome").text == "passed"
    instruction = (BUNDLED_TASKS / "git-recover-commit" / "instruction.md").read_text().strip()
    assert panel.find_element("css selector", "pre.instruction").text.strip() == instruction
    turns = panel.find_elements("css selector", ".turn")
    assert [t.get_attribute("data-turn") for t in turns] == ["1", "2", "3"]
    keys = [[k.text for k in t.find_elements("css selector", "code.keys")] for t in turns]
    assert keys == [["git reflog⏎"], ["git cherry-pick 9d8e7f6⏎", "git log --oneline | head -3⏎"], []]
    assert [t.find_element("css selector", ".badge.parse").text for t in turns] == ["ok", "ok", "ok"]
    assert turns[0].find_element("css selector", "ul.warnings").text == "added a missing closing brace"
    folded = turns[0].find_element("css selector", "details.reasoning")
    assert folded.get_attribute("open") is None and "reflog" in folded.get_attribute("textContent")
    assert "9d8e7f6 add feature" in turns[1].find_element("css selector", "pre.obs").text
    assert "git cherry-pick 9d8e7f6" in turns[1].find_element("css selector", "pre.reply").text
    assert "1 passed" in panel.find_element("css selector", "pre.vlog").text
    # a long observation is cut, and the cut is marked
    _by_css(page, 'button.cell[data-key="1|log-traffic-report|1"]')[0].click()
    _wait(page, "return document.querySelector('#trial-panel').dataset.key === '1|log-traffic-report|1' && "
                "!!document.querySelector('#trial-panel mark.cut')")
    assert re.fullmatch(r"\d+ characters cut", page.find_element("css selector", "#trial-panel mark.cut").text)
    # a parse failure shows its status and error
    _by_css(page, 'button.cell[data-key="0|fix-c-build|1"]')[0].click()
    _wait(page, "return document.querySelectorAll('#trial-panel .badge.parse').length === 3")
    assert {b.text for b in _by_css(page, "#trial-panel .badge.parse")} == {"parse_fail"}
    assert "no JSON object found" in page.find_element("css selector", "#trial-panel .perror").text


def test_side_by_side_pairs_the_right_trials(page, artifacts):
    _tab(page, "matrix")
    _by_css(page, 'button.cell[data-key="0|git-recover-commit|1"]')[0].click()
    _wait(page, "return document.querySelectorAll('#trial-panel .sbs-with').length === 2")
    _by_css(page, '#trial-panel .sbs-with[data-run="abliterated"]')[0].click()
    _wait(page, "return document.querySelectorAll('#sbs .sbs-row[data-turn]').length === 3")
    heads = _by_css(page, "#sbs .sbs-head .trial-title")
    assert [h.text for h in heads] == ["base · git-recover-commit · attempt 1",
                                       "abliterated · git-recover-commit · attempt 1"]
    rows = _by_css(page, "#sbs .sbs-row[data-turn]")
    left = [r.find_element("css selector", '[data-side="left"]') for r in rows]
    right = [r.find_element("css selector", '[data-side="right"]') for r in rows]
    assert [c.find_element("css selector", "code.keys").text for c in left[:2]] == ["git status⏎", "git log --oneline⏎"]
    assert left[2].text == "no turn 3"
    assert [c.find_element("css selector", ".turn").get_attribute("data-turn") for c in right] == ["1", "2", "3"]
    assert right[0].find_element("css selector", "code.keys").text == "git reflog⏎"
    outcomes = [b.text for b in _by_css(page, "#sbs .sbs-head .badge.outcome")]
    assert outcomes == ["failed", "passed"]
    page.save_screenshot(str(artifacts / "report_side_by_side.png"))
    # the task selector switches both sides to another task, same runs
    from selenium.webdriver.support.select import Select

    Select(page.find_element("id", "cmp-task")).select_by_value("hello-world")
    _wait(page, "return [...document.querySelectorAll('#sbs .sbs-head .trial-title')].every("
                "h => h.textContent.includes('hello-world'))")


def test_nothing_is_fetched_from_the_network(page, browser, artifacts):
    browser.clear()
    page.refresh()
    _wait(page, "return document.documentElement.dataset.ready === '1'")
    _tab(page, "matrix")
    _by_css(page, 'button.cell[data-key="2|git-recover-commit|1"]')[0].click()
    _wait(page, "return document.querySelectorAll('#trial-panel .turn').length === 3")
    page.save_screenshot(str(artifacts / "report_matrix_trial.png"))
    _tab(page, "summary")
    _wait(page, "return [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    page.save_screenshot(str(artifacts / "report_summary.png"))
    _tab(page, "provenance")
    facts = {tr.get_attribute("data-fact"): tr.text for tr in _by_css(page, "#provenance-table tr[data-fact]")}
    assert "smollm2-base" in facts["model"] and "0123456789" in facts["git sha"] and facts["seed"].endswith("7 7 7")
    sent = [r["url"] for r in browser.requests()]
    assert sent and all(u.startswith(("file://", "data:")) for u in sent), sent
    entries = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith("data:") for u in entries), entries
    assert browser.console_errors() == []  # no CSP violation, no script error
    # and the page could not leak if it tried: its CSP blocks any load that is not data:
    blocked = page.execute_async_script("""
        const done = arguments[0];
        document.addEventListener('securitypolicyviolation', e => done(e.violatedDirective), {once: true});
        const img = new Image(); img.src = 'http://127.0.0.1:9/leak.png';""")
    assert blocked == "img-src"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the performance log may lag the event
        leaks = [r for r in browser.requests() if r["url"].startswith("http")]
        if leaks and all(r["blocked"] for r in leaks):
            break
        time.sleep(0.1)
    assert leaks == [{"url": "http://127.0.0.1:9/leak.png", "blocked": "csp"}]
    browser.clear()


# ---------------------------------------------------------------- ablbench view


def test_view_serves_the_page_and_refreshes_as_trials_finish(browser, tmp_path, artifacts):
    base = write_run(tmp_path / "base", "base", [TrialPlan("hello-world", "passed", _turns("base", "x", "passed")),
                                                 TrialPlan("make-output-dir", "failed", GIT_BASE)],
                     model="m-base", tasks=["hello-world", "make-output-dir"])
    running = TrialPlan("make-output-dir", "passed", GIT_ABL[:1], finished=False)
    abl = write_run(tmp_path / "abl", "abl", [TrialPlan("hello-world", "passed", GIT_ABL), running],
                    model="m-abl", tasks=["hello-world", "make-output-dir"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", "from harness.cli import main; main()", "view", str(base), str(abl),
                             "--port", "0", "--poll", "0.3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        url = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert url, line + proc.stderr.read() if proc.poll() is not None else line
        d = browser.driver
        browser.clear()  # forget the browser's own start page
        d.get(url.group(1))
        _wait(d, "return document.documentElement.dataset.ready === '1'")
        assert d.execute_script("return document.getElementById('live-status').hidden") is False
        _tab(d, "matrix")
        cell = 'button.cell[data-key="1|make-output-dir|1"]'
        assert _by_css(d, cell)[0].get_attribute("data-outcome") == "running"
        _by_css(d, cell)[0].click()  # a running trial shows its turns so far, fetched from the server
        _wait(d, "return document.querySelectorAll('#trial-panel .turn').length === 1")
        assert "still running" in d.find_element("id", "trial-panel").text
        # the trial finishes: the runner writes its result and rewrites the summary
        write_run(abl, "abl", [TrialPlan("hello-world", "passed", GIT_ABL),
                               TrialPlan("make-output-dir", "passed", GIT_ABL)],
                  model="m-abl", tasks=["hello-world", "make-output-dir"])
        _wait(d, f"const c = document.querySelector('{cell}'); return c && c.dataset.outcome === 'passed'")
        _wait(d, "return document.querySelectorAll('#trial-panel .turn').length === 3")  # the open trial reloads
        assert "still running" not in d.find_element("id", "trial-panel").text
        d.save_screenshot(str(artifacts / "report_view_live.png"))
        import httpx

        api = url.group(1) + "api/trial"
        assert httpx.get(api, params={"key": "1|make-output-dir|1"}).json()["result"]["outcome"] == "passed"
        assert httpx.get(api, params={"key": "1|../..|1"}).status_code == 404  # only trials the page lists
        assert httpx.get(url.group(1), headers={"Host": "evil.example:80"}).status_code == 403
        sent = [r["url"] for r in browser.requests()]
        assert sent and all(u.startswith((url.group(1), "data:")) for u in sent), sent
        assert browser.console_errors() == []
    finally:
        browser.driver.get("about:blank")  # stop the page's polling before the server goes
        browser.clear()
        proc.send_signal(signal.SIGTERM)  # ends like Ctrl-C
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()


def test_view_of_a_run_with_no_finished_trial_yet(tmp_path):
    from harness.analysis.live import LiveReport

    done = write_run(tmp_path / "base", "base", [TrialPlan("hello-world", "passed", GIT_BASE)], model="m")
    fresh = write_run(tmp_path / "abl", "abl", [TrialPlan("hello-world", "passed", GIT_BASE[:1], finished=False)],
                      model="m", tasks=["hello-world", "make-output-dir"])
    report = LiveReport([done, fresh], [None, None])
    try:
        version, data, res = report.state()
        assert res is None and data["analysis_error"] == "no finished trial yet in abl"
        assert [(c["task"], c["outcome"]) for c in data["cells"][1]] == [("hello-world", "running"),
                                                                          ("make-output-dir", "pending")]
        assert report.state()[0] == version  # nothing changed, same version
        write_run(fresh, "abl", [TrialPlan("hello-world", "passed", GIT_BASE)], model="m",
                  tasks=["hello-world", "make-output-dir"])
        version2, data, res = report.state()
        assert version2 != version and res is not None and data["analysis_error"] is None
        assert "Pass rates" in data["stats_html"] and [p["name"] for p in data["plots"]][0] == "pass_rates.png"
    finally:
        report.close()


def test_view_fails_clearly_on_a_missing_folder(tmp_path):
    res = CliRunner().invoke(app, ["view", str(tmp_path / "nope"), "--port", "0"])
    assert res.exit_code != 0 and "no such file or folder" in res.output


def test_a_trial_still_being_written_reads_without_error(tmp_path):
    from harness.analysis.trials import trial_record

    write_trial(tmp_path, TrialPlan("hello-world", "passed", GIT_ABL[:2], finished=False))
    folder = tmp_path / "hello-world" / "1"
    with (folder / "trace.jsonl").open("a") as fh:
        fh.write('{"turn": 3, "reply": "half a li')  # the writer is mid-line
    rec = trial_record(folder, "hello-world", 1)
    assert rec["running"] and rec["result"] is None and rec["end"] is None
    assert [t["turn"] for t in rec["turns"]] == [1, 2]


# ---------------------------------------------------------------- several attempts, a behaviour section


def test_attempts_get_one_square_each_and_a_behaviour_section_renders_generically(browser, tmp_path):
    from harness.analysis import analyze, load_run
    from harness.analysis.html import build_report

    plans = {"base": [("hello-world", 1, "passed"), ("hello-world", 2, "failed"), ("make-output-dir", 1, "failed"),
                      ("make-output-dir", 2, "agent_timeout")],
             "abl": [("hello-world", 1, "passed"), ("hello-world", 2, "passed"), ("make-output-dir", 1, "failed"),
                     ("make-output-dir", 2, "passed")]}
    folders = [write_run(tmp_path / name, name, [TrialPlan(t, o, GIT_BASE, attempt=a) for t, a, o in trials],
                         model=name, attempts=2) for name, trials in plans.items()]
    runs = [load_run(f) for f in folders]
    res = analyze(runs)
    # the shape issue 19's behaviour section may take: per-run metrics, a per-pair table, sentences
    res["behaviour"] = {
        "per_run": {"base": {"turns_mean": 2.0, "no_cmd_rate": 0.25}, "abl": {"turns_mean": 2.0, "no_cmd_rate": 0.0}},
        "pairs": [{"a": "base", "b": "abl", "turns_diff": 0.0}],
        "sentences": ["abl never answered without a command; base did in 1 of 4 trials."],
    }
    html = tmp_path / "report.html"
    html.write_text(build_report(res, runs), encoding="utf-8")
    d = browser.driver
    d.get(html.as_uri())
    _wait(d, "return document.documentElement.dataset.ready === '1'")
    _tab(d, "matrix")
    row = _by_css(d, '#matrix-table tr[data-task="make-output-dir"]')[0]
    squares = [(b.get_attribute("data-key"), b.text) for b in row.find_elements("css selector", "button.cell.k")]
    assert squares == [("0|make-output-dir|1", "✗"), ("0|make-output-dir|2", "T"), ("1|make-output-dir|1", "✗"),
                       ("1|make-output-dir|2", "✓")]
    _tab(d, "behaviour")
    tab = d.find_element("id", "tab-behaviour")
    tables = tab.find_elements("css selector", "table")
    assert [[c.text for c in tr.find_elements("css selector", "td,th")] for tr in tables[0].find_elements(
        "css selector", "tr")] == [["", "turns_mean", "no_cmd_rate"], ["base", "2", "0.250"], ["abl", "2", "0"]]  # JSON 2.0 is the integer 2 in JS
    assert tables[1].find_element("css selector", "td").text == "base"
    assert tab.find_element("css selector", "li").text.startswith("abl never answered")
    assert browser.console_errors() == []
