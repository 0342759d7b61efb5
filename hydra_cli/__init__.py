"""The ``hydra`` command line (installed as the ``hydra`` console script).

Layout, so later commands slot in the same way:

* ``main``    -- the root Typer app, global options (``--debug``, ``--version``) and ``main()``.
* ``errors``  -- ``CliError``, exit codes and the error boundary that turns failures into one
  ``error: ...`` line on stderr (a traceback only with ``--debug``).
* ``output``  -- Rich consoles; user-supplied text is never parsed as Rich markup.
* ``db``      -- resolving and validating the database URL (``--db``, ``HYDRA_DATABASE_URL``,
  the embedded SQLite default) and read-only probes of a database.
* ``migrate`` -- ``hydra migrate``, ``hydra migrate --sql``, ``hydra migrate status``.
* ``render``  -- how an execution looks: the trace, the live view's frames, progress lines
  and the JSON of ``--json``.
* ``session`` -- opening an engine on the command's database and namespace.
* ``loader``  -- importing a workflow file by path, or ``MODULE:ATTR``.
* ``dev``     -- ``hydra dev run FILE`` (worker threads, live view, ``--fast-forward``).
* ``trace``   -- ``hydra trace EXECUTION_ID``.
* ``executions`` -- ``hydra executions list|show|cancel|retry``.
* ``worker``  -- ``hydra worker MODULE:ATTR``.
"""
