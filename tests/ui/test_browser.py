"""The web UI in a real browser (headless Chromium): the list, its filters, an
execution's page, actions, and live updates."""

from __future__ import annotations

from typing import Any

import pytest

from hydra import Status

from .conftest import Setup, doc_image

pytestmark = pytest.mark.slow


def finished(setup: Setup, *ids: str) -> None:
    for eid in ids:
        setup.engine.wait(eid, timeout=30)


def test_the_list_filters_and_opens_an_execution(setup: Setup, page: Any) -> None:
    engine = setup.engine
    setup.flows.failing.set()
    done = [engine.start_workflow("order", n, idempotency_key=f"order-{n}") for n in (1, 2)]
    failed = engine.start_workflow("flaky", 7, max_attempts=1)
    finished(setup, *done, failed)
    url = setup.serve()

    page.goto(url)
    rows = page.locator("table.list tbody tr")
    assert rows.count() == 3
    doc_image(page, "ui-executions.png")

    page.select_option("#f-status", "failed")
    page.click("#f-apply")
    page.wait_for_url("**status=failed**")
    assert rows.count() == 1
    assert "flaky" in rows.first.inner_text()

    page.fill("#f-search", "order-2")  # an idempotency key
    page.select_option("#f-status", "")
    page.click("#f-apply")
    page.wait_for_url("**q=order-2**")
    assert rows.count() == 1
    assert done[1][:8] in rows.first.inner_text()

    page.goto(url)
    page.click(f"a[href$='/executions/{done[0]}']")
    page.wait_for_url(f"**/executions/{done[0]}")
    steps = page.locator("table.steps tr.step td.name")
    names = [steps.nth(i).inner_text() for i in range(steps.count())]
    assert [n.split(" ", 1)[1] for n in names] == ["price", "sleep-1", "ship"]
    assert page.locator("#exec-status").inner_text() == "completed"
    assert '"total": 10' in page.locator("#exec-output").inner_text()
    doc_image(page, "ui-execution.png")


def test_errors_are_shown_escaped(setup: Setup, page: Any) -> None:
    setup.flows.failing.set()
    failed = setup.engine.start_workflow("flaky", 1, max_attempts=1)
    finished(setup, failed)
    page.goto(setup.serve() + f"executions/{failed}")
    text = page.locator("table.steps").inner_text()
    # Both attempts of the step, each with its error, control characters shown escaped
    assert "attempt 1" in text and "attempt 2" in text
    assert "card declined \\x1b[31m<script>alert(1)</script>" in text
    assert page.locator("script").count() == 1  # the page's own, not the error's


def test_retry_with_actions_on(setup: Setup, page: Any) -> None:
    setup.flows.failing.set()
    failed = setup.engine.start_workflow("flaky", 3, max_attempts=1)
    finished(setup, failed)
    page.goto(setup.serve(allow_actions=True) + f"executions/{failed}")
    assert page.locator("#exec-status").inner_text() == "failed"

    page.click("#act-retry")
    page.wait_for_selector("#confirm")  # a confirmation page: nothing done yet
    assert setup.engine.get_execution(failed).status == Status.FAILED
    setup.flows.failing.clear()  # the retry succeeds
    page.click("#confirm")
    page.wait_for_url(f"**/executions/{failed}?done=retrying")
    page.wait_for_selector("#exec-status:text-is('completed')")
    assert setup.engine.get_execution(failed).status == Status.COMPLETED


def test_actions_refused_without_the_flag(setup: Setup, page: Any) -> None:
    setup.flows.failing.set()
    failed = setup.engine.start_workflow("flaky", 4, max_attempts=1)
    finished(setup, failed)
    url = setup.serve()
    page.goto(url + f"executions/{failed}")
    assert page.locator("#act-retry").count() == 0
    assert page.locator(".actions").count() == 0
    response = page.request.post(url + f"executions/{failed}/retry", form={"confirm": "yes"})
    assert response.status == 403
    assert setup.engine.get_execution(failed).status == Status.FAILED


def test_a_running_execution_updates_without_a_reload(setup: Setup, page: Any) -> None:
    eid = setup.engine.start_workflow("slow", 1)
    url = setup.serve()
    page.goto(url + f"executions/{eid}")
    page.wait_for_selector("#exec-status:text-is('running')")
    # The step in flight is not stored (only its process knows it): its first step is.
    page.wait_for_selector("tr.step:has-text('first')")
    assert page.locator("tr.step:has-text('wait-for-go')").count() == 0
    page.evaluate("window.notReloaded = true")

    setup.flows.go.set()
    page.wait_for_selector("#exec-status:text-is('completed')")
    assert page.evaluate("window.notReloaded") is True
    page.wait_for_selector("tr.step:has-text('wait-for-go')")
    assert '"went"' in page.locator("#exec-output").inner_text()


def test_the_list_updates_without_a_reload(setup: Setup, page: Any) -> None:
    page.goto(setup.serve())
    page.wait_for_selector("p.empty")
    page.evaluate("window.notReloaded = true")
    eid = setup.engine.start_workflow("order", 5)
    page.wait_for_selector(f"a[href$='/executions/{eid}']")
    assert page.evaluate("window.notReloaded") is True


def test_cron_queues_and_workers_pages(setup: Setup, page: Any) -> None:
    eid = setup.engine.start_workflow("slow", 2)
    url = setup.serve()
    page.goto(url + f"executions/{eid}")
    page.wait_for_selector("#exec-status:text-is('running')")
    page.click("nav >> text=workers")
    assert "ui-test-worker" in page.locator("table.list").inner_text()
    page.click("nav >> text=queues")
    assert "default" in page.locator("table.list").inner_text()
    page.click("nav >> text=cron jobs")
    assert "no cron jobs" in page.locator("main").inner_text()
    setup.flows.go.set()
