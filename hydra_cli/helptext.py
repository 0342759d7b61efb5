"""How ``--help`` shows parameters: flags without a type, arguments by their metavar.

Typer 0.29 writes a type after every option and argument in help: ``--json <bool>`` for a
flag (which takes no value), ``EXECUTION_ID <str>`` for an argument, and a required
argument as ``{EXECUTION_ID}`` in the usage line. Hydra's help shows a flag alone, and an
argument by its metavar (``FILE``, ``MODULE:ATTR``, ``EXECUTION_ID``), bare in the usage
line as Click writes it (``[NAME]`` when optional).

Typer has no hook for the classes of parameters (it builds ``TyperOption`` and
``TyperArgument`` itself, and adds ``--help`` and the completion options later), so the
root group (``errors.HydraGroup``, a ``HelpGroup``) calls ``use_hydra_help`` on the command
tree Typer built: each command becomes a ``HelpCommand`` or ``HelpGroup``, whose
``get_params`` gives each parameter the subclass of its class that renders it as above.
None of these subclasses adds state, so an object can take one in place of its class.
``tests/cli/test_help.py`` keeps the result under a snapshot test.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption


class HelpOption(TyperOption):
    """An option whose help shows no type for a flag."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag:
            return None
        return super().display_type_rich(ctx)


class HelpArgument(TyperArgument):
    """An argument shown by its metavar alone, in the help table and in the usage line."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.metavar or self.name.upper()
        if not self.required:
            name = f"[{name}]"
        if self.nargs != 1:
            name += "..."
        return name


_PARAM_CLASSES: dict[type, type] = {TyperOption: HelpOption, TyperArgument: HelpArgument}


def _with_hydra_help(params: list[Any]) -> list[Any]:
    """``params`` (a command's, with the ``--help`` and completion options Typer and Click
    add after building it), each of Typer's own classes given hydra's rendering."""
    for param in params:
        swap = _PARAM_CLASSES.get(type(param))
        if swap is not None:
            param.__class__ = swap
    return params


class HelpCommand(TyperCommand):
    """A command with hydra's help (see the module docstring)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _with_hydra_help(super().get_params(ctx))


class HelpGroup(TyperGroup):
    """A command group with hydra's help (see the module docstring)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _with_hydra_help(super().get_params(ctx))


_COMMAND_CLASSES: dict[type, type] = {TyperCommand: HelpCommand, TyperGroup: HelpGroup}


def use_hydra_help(command: Any) -> None:
    """Give every command below ``command`` hydra's help rendering (Typer builds them as
    its own classes: ``TyperCommand``, ``TyperGroup``; subclasses are left alone)."""
    for sub in getattr(command, "commands", {}).values():
        swap = _COMMAND_CLASSES.get(type(sub))
        if swap is not None:
            sub.__class__ = swap
        use_hydra_help(sub)
