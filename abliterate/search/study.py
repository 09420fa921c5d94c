"""The Optuna study behind ``abliterate search``: seeded multi-objective TPE in a SQLite file.

Rules, in order:
1. One study per run folder, in ``search/study.sqlite3`` (Optuna's RDB storage), all
   objectives minimised. A lock file (``search/.lock``, flock) lets one process at a time work
   on it; a second one stops with a clear error.
2. The study remembers its settings key (model, prompts, budgets, objectives); resuming with
   different settings is an error (start a new run folder or pass ``fresh``).
3. Resume after a kill: a trial left RUNNING by a dead process has no result; it is marked
   FAIL (user attribute ``interrupted``) and its parameters are enqueued once as a new trial
   (``retry_of`` = its number). Enqueued trials not yet started stay queued. Completed trials
   are never rerun, so no trial is lost or repeated.
4. The budget counts COMPLETE trials: the study runs until ``trials`` of them exist.
5. Seeding: TPE (multivariate, ``startup`` random trials first, heretic uses 60 of 200) seeded
   with ``seed`` on a fresh study; a resumed one is seeded with ``seed`` plus the number of
   trials already stored, so its random start-up draws do not replay the first session's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from abliterate.errors import AbliterationError

STUDY_FILE = "study.sqlite3"
STUDY_NAME = "abliterate-search"
LOCK_FILE = ".lock"


@contextlib.contextmanager
def study_lock(folder: Path) -> Iterator[None]:
    """Exclusive, non-blocking lock on ``folder/.lock`` (released when the process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    fh = (folder / LOCK_FILE).open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise AbliterationError(f"another search (pid {holder}) is working on {folder}: wait for it or stop it") from exc
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def storage_url(folder: Path) -> str:
    """SQLAlchemy URL of the study file in ``folder``."""
    return f"sqlite:///{(Path(folder) / STUDY_FILE).resolve()}"


def open_study(folder: Path, n_objectives: int, settings_key: str, *, fresh: bool = False):
    """Create or load the study; check its settings key (rule 2)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = Path(folder)
    if fresh:
        (folder / STUDY_FILE).unlink(missing_ok=True)
    storage = optuna.storages.RDBStorage(storage_url(folder), engine_kwargs={"connect_args": {"timeout": 60}})
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, load_if_exists=True,
                                directions=["minimize"] * n_objectives)
    stored = study.user_attrs.get("settings_key")
    if stored is None:
        study.set_user_attr("settings_key", settings_key)
    elif stored != settings_key:
        raise AbliterationError(
            f"the study in {folder} was made with other settings (model, prompts or budgets): "
            "use the same options, pass --fresh to start over, or use a new run folder"
        )
    if len(study.directions) != n_objectives:
        raise AbliterationError(f"the study in {folder} has {len(study.directions)} objectives, not {n_objectives}: "
                                "pass --fresh or use a new run folder")
    return study


def recover_interrupted(study) -> list[int]:
    """Rule 3: fail trials left RUNNING by a dead process; enqueue each interrupted trial's parameters once.

    A trial stopped by Ctrl-C is already FAIL with ``interrupted`` set; it is enqueued the same way.
    """
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study.tell(t.number, state=TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    requeued = []
    for t in trials:
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and t.number not in retried:
            study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
            requeued.append(t.number)
    return requeued


def make_sampler(seed: int, startup: int, stored_trials: int):
    """Rule 5: a seeded multivariate TPE sampler."""
    import optuna
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed + stored_trials, n_startup_trials=startup, multivariate=True)


def completed(study) -> list:
    """COMPLETE trials in number order."""
    from optuna.trial import TrialState

    return sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number)


def run_study(folder: Path, *, objectives: list[str], space: Callable, evaluate: Callable[[object], dict],
              trials: int, seed: int = 0, startup: int | None = None, settings_key: str = "",
              fresh: bool = False, log: Callable[[str], None] = lambda _m: None,
              on_trial: Callable[[object], None] | None = None):
    """Run (or resume) the study until ``trials`` COMPLETE trials exist; returns the study.

    ``space(trial)`` suggests a trial's parameters; ``evaluate(params)`` returns a dict holding
    every objective name (and optional extras, stored as user attributes).
    """
    if trials < 1:
        raise AbliterationError(f"--trials {trials}: the search needs at least one trial")
    startup = max(1, round(0.3 * trials)) if startup is None else startup
    folder = Path(folder)
    with study_lock(folder):
        study = open_study(folder, len(objectives), settings_key, fresh=fresh)
        study.set_user_attr("objectives", list(objectives))
        retried = recover_interrupted(study)
        if retried:
            log(f"resume: trial(s) {retried} were interrupted by a kill; marked failed and queued again")
        done = len(completed(study))
        study.sampler = make_sampler(seed, startup, len(study.trials))
        if done:
            log(f"resume: {done} of {trials} trial(s) already complete")

        def objective(trial):
            try:
                params = space(trial)
                result = evaluate(params)
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)
                raise
            for key, value in result.items():
                if key not in objectives:
                    trial.set_user_attr(key, json.loads(json.dumps(value, default=float)))
            return tuple(float(result[o]) for o in objectives)

        callbacks = [lambda _s, t: on_trial(t)] if on_trial else []
        if trials > done:
            study.optimize(objective, n_trials=trials - done, callbacks=callbacks, gc_after_trial=False)
    return study


def pareto_trials(study) -> list:
    """The non-dominated COMPLETE trials (Optuna's ``best_trials``), in number order."""
    return sorted(study.best_trials, key=lambda t: t.number)
