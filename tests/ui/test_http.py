"""The UI's HTTP rules without a browser: basic auth, cross-site actions refused, a
mounted app's links, and ``import hydra`` leaving the UI (and Starlette) alone."""

from __future__ import annotations

import base64
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import hydra
from hydra.store.sql import SQLStore
from hydra.ui import create_app
from hydra.ui.serve import BackgroundServer, is_loopback


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLStore]:
    s = SQLStore(f"sqlite:///{tmp_path / 'ui.db'}")
    yield s
    s.close()


def fetch(
    url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        body = exc.read().decode()
        exc.close()
        return exc.code, body


def test_basic_auth_is_required_when_set(store: SQLStore) -> None:
    with BackgroundServer(create_app(store, basic_auth=("ops", "s3cret"))) as server:
        assert fetch(server.url)[0] == 401
        wrong = base64.b64encode(b"ops:nope").decode()
        assert fetch(server.url, headers={"Authorization": f"Basic {wrong}"})[0] == 401
        right = base64.b64encode(b"ops:s3cret").decode()
        status, body = fetch(server.url, headers={"Authorization": f"Basic {right}"})
        assert status == 200 and "Executions" in body


def test_an_action_from_another_site_is_refused(store: SQLStore) -> None:
    engine = hydra.Engine(store)
    eid = engine.start_workflow("nobody-runs-this", 1)
    app = create_app(store, allow_actions=True)
    with BackgroundServer(app) as server:
        page = fetch(f"{server.url}executions/{eid}")[1]
        token = page.split('name="token" value="', 1)[1].split('"', 1)[0]
        form = f"token={token}&confirm=yes".encode()
        cancel = f"{server.url}executions/{eid}/cancel"
        evil = {"Origin": "http://evil.example"}
        assert fetch(cancel, data=form, headers=evil)[0] == 403
        assert fetch(cancel, data=b"token=guess&confirm=yes")[0] == 403
        assert engine.get_execution(eid).status == hydra.Status.PENDING
        # without confirm=yes: the confirmation page, nothing done
        status, body = fetch(cancel, data=f"token={token}".encode())
        assert status == 200 and 'id="confirm"' in body
        assert engine.get_execution(eid).status == hydra.Status.PENDING
        same = {"Origin": server.url.rstrip("/")}
        assert fetch(cancel, data=form, headers=same)[0] == 200  # after the 303
        assert engine.get_execution(eid).status == hydra.Status.CANCELLED


def test_mounted_under_a_prefix_its_links_keep_the_prefix(store: SQLStore) -> None:
    eid = hydra.Engine(store).start_workflow("nobody-runs-this", 1)
    outer = Starlette(routes=[Mount("/hydra", app=create_app(store, "default"))])
    with BackgroundServer(outer) as server:
        status, body = fetch(server.url + "hydra/")
        assert status == 200
        assert f'href="/hydra/executions/{eid}"' in body
        assert 'href="/hydra/static/hydra-ui.css"' in body
        assert fetch(server.url + "hydra/static/hydra-ui.js")[0] == 200
        assert fetch(server.url + f"hydra/executions/{eid}")[0] == 200


def test_an_unknown_execution_is_a_404(store: SQLStore) -> None:
    with BackgroundServer(create_app(store)) as server:
        status, body = fetch(server.url + "executions/%3Cb%3Enope")
        assert status == 404 and "&lt;b&gt;nope" in body


def test_import_hydra_does_not_import_the_ui() -> None:
    code = "import sys, hydra; print('hydra.ui' in sys.modules, 'starlette' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_loopback_addresses() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert not is_loopback("example.com")
