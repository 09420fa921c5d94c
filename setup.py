"""What pyproject.toml cannot say: the bundled tasks (``tasks/``) ship in the wheel as package
data under ``ablbench.bundled_tasks``, so ``ablbench run --agent oracle`` works outside the
checkout. Everything else about the distribution is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["ablbench*", "abliterate*", "harness*", "runners*"]), "ablbench.bundled_tasks"],
    package_dir={"ablbench.bundled_tasks": "tasks"},
    package_data={
        "ablbench.bundled_tasks": ["**/*"],
        "ablbench": ["schemas/*.json"],  # the published result/run/analysis schemas (ablbench.records)
        "": ["*.json", "*.jsonl", "*.html", "*.js", "*.css", "*.jinja", "*.txt"],
    },
    exclude_package_data={"": ["__pycache__/*", "*.pyc"]},
)
