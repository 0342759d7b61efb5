"""The README is a front page: short, its Python examples run as shown, its links lead
somewhere, and every Python block of the docs is run by some test."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from tests.docs import pages

pytest_plugins = ["pytester"]

README = pages.README
#: the most lines the front page may have (issue 10: "at most ~250 lines")
MAX_README_LINES = 250


def python_blocks() -> list[str]:
    return pages.blocks(README.read_text())


def test_readme_starts_with_the_demo_and_test_commands() -> None:
    head = README.read_text().splitlines()[:5]
    assert "./scripts/demo.sh" in "\n".join(head)
    assert "./scripts/test.sh" in "\n".join(head)


def test_readme_is_a_front_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= MAX_README_LINES
    titles = re.findall(r"^## (.+)$", text, flags=re.M)
    assert titles[:4] == [
        "Quick start",
        "How a workflow runs",
        "What is guaranteed",
        "Testing your workflows",
    ]


def test_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    quick_start = python_blocks()[0]
    assert "class Onboarding" in quick_start
    assert "worker.register(Onboarding())" in quick_start
    # A real module, so dataclasses can find the module their class is defined in.
    module = types.ModuleType("readme_quick_start")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    exec(compile(quick_start, "README.md", "exec"), module.__dict__)
    assert module.execution.status == "completed"
    assert (tmp_path / ".hydra" / "quickstart.db").exists()


def test_the_start_options_listed_are_the_real_ones() -> None:
    import inspect

    import hydra

    text = " ".join(README.read_text().split())
    shown = re.search(r"`engine\.start_workflow\(name, payload, \*, ([^`]*)\)`", text)
    assert shown is not None
    params = inspect.signature(hydra.Engine.start_workflow).parameters
    documented = dict(arg.split("=", 1) for arg in shown.group(1).split(", "))
    assert set(documented) == set(params) - {"self", "name", "payload"}
    from datetime import timedelta

    for name, default in documented.items():
        assert params[name].default == eval(default, {"timedelta": timedelta}), name


def test_async_example_runs_as_a_script(capsys: pytest.CaptureFixture[str]) -> None:
    block = next(b for b in python_blocks() if "resize-image" in b)
    assert block.startswith("from datetime import timedelta\n\nimport hydra\n")
    exec(compile(block, "README.md", "exec"), {"__name__": "__main__"})
    assert capsys.readouterr().out == "<PIXELS OF CAT.PNG>\n"


def test_the_testing_teaser_passes_as_a_user_test(pytester: pytest.Pytester) -> None:
    quick_start = python_blocks()[0]
    definitions = quick_start[: quick_start.index("\nstore = ")]
    (teaser,) = [b for b in python_blocks() if "def test_" in b]
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    pytester.makepyfile(test_onboarding=definitions + "\n\n" + teaser)
    result = pytester.runpytest("-p", "no:cacheprovider", "-v")
    result.stdout.fnmatch_lines(["*test_a_crash_mid_step_runs_only_that_step_again PASSED*"])
    result.assert_outcomes(passed=1)


#: every page of docs/ with Python blocks -> the tests that run them (module: blocks run)
RUN_BY = {
    "README.md": ("tests/docs/test_readme.py", 3),
    "testing.md": ("tests/docs/test_testing_workflows_page.py + test_testing_page.py", 3),
    "cli.md": ("tests/cli/test_readme_cli.py", 2),
    "cron.md": ("tests/docs/test_cron_metrics_pages.py", 3),
    "logging.md": ("tests/docs/test_logging_page.py", 1),
    "observers.md": ("tests/docs/test_observers_page.py", 1),
    "metrics.md": ("tests/docs/test_cron_metrics_pages.py", 1),
    "databases.md": ("tests/docs/test_databases_page.py", 2),
    "operating.md": ("tests/docs/test_operating.py", 1),
    "messages.md": ("tests/docs/test_messages_page.py", 4),
    "children.md": ("tests/docs/test_children_page.py", 4),
    "deploys.md": ("tests/docs/test_deploys_page.py", 4),
    "queues.md": ("tests/docs/test_queues_page.py", 3),
    "tracing.md": ("tests/docs/test_tracing_page.py", 1),
    "ui.md": ("tests/docs/test_ui_page.py", 1),
}


def test_every_python_block_of_the_docs_is_run_by_a_test() -> None:
    """A page that gains a Python block must gain the test that runs it (listed above)."""
    found = {
        path.name: len(pages.blocks(path.read_text()))
        for path in [README, *sorted(pages.DOCS.glob("*.md"))]
    }
    with_blocks = {name: count for name, count in found.items() if count}
    assert with_blocks == {name: count for name, (_, count) in RUN_BY.items()}


def test_every_link_between_the_pages_leads_somewhere() -> None:
    for path in [README, *sorted(pages.DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", path.read_text()):
            assert (path.parent / target).exists(), f"{path.name} links {target}"
        for target, anchor in re.findall(r"\]\(([^)#:]*\.md)?#([^)]+)\)", path.read_text()):
            linked = path.parent / target if target else path
            headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.M)
            slugs = {_slug(h) for h in headings}
            assert anchor in slugs, f"{path.name} links {target}#{anchor}: no such heading"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation but - and _ dropped."""
    text = heading.strip().lower().replace(" ", "-")
    return re.sub(r"[^\w\-]", "", text)


def test_the_readme_links_every_page() -> None:
    text = README.read_text()
    for path in sorted(pages.DOCS.glob("*.md")):
        assert f"(docs/{path.name})" in text, path.name
