"""The web UI of ``hydra ui`` (the ``hydra-workflows[ui]`` extra): ``create_app``.

Not imported by ``import hydra``: it needs Starlette, Jinja2 and uvicorn. Mount it in
your own ASGI app with ``app.mount("/hydra", create_app(store, "default"))``.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
