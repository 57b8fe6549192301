"""Typed option dataclasses, documented once: the choices of a ``Literal`` field, its checks, its
documentation (the string under the field), and command-line options built from them.

Every settings object in memevae (model configs, training and data configs, each metric's
options) is a dataclass whose fields carry their type, default and documentation; the command
line reads all three from here, so a default or a choice is written in one place.

Example:
    >>> from memevae.models import MEMEConfig
    >>> choices(MEMEConfig, "kl"), field_help(MEMEConfig)["latent_dim"]
    (('analytic', 'monte-carlo'), 'Latent size L.')
    >>> MEMEConfig(kl="exact")
    Traceback (most recent call last):
    ...
    ValueError: unknown kl 'exact'; choose one of analytic, monte-carlo
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import numbers
import os
import re
import textwrap
import types
import typing


@functools.cache
def _hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except NameError:  # string annotations naming typing's members where they were not imported (a doctest, a notebook)
        import sys

        return typing.get_type_hints(cls, globalns={**vars(typing), **vars(sys.modules.get(cls.__module__, typing))})


def choices(cls, name: str) -> tuple | None:
    """The allowed values of field ``name`` when it is typed ``Literal[...]`` (or ``Literal[...] | None``), else None."""
    hint = _hints(cls)[name]
    if typing.get_origin(hint) is typing.Literal:
        return typing.get_args(hint)
    literals = [a for a in typing.get_args(hint) if typing.get_origin(a) is typing.Literal]
    return typing.get_args(literals[0]) if literals else None


def check_choices(instance) -> None:
    """One-line ValueError for a ``Literal`` field holding a value outside its choices."""
    for f in dataclasses.fields(instance):
        allowed = choices(type(instance), f.name)
        value = getattr(instance, f.name)
        if allowed is not None and value not in allowed and not (value is None and type(None) in typing.get_args(_hints(type(instance))[f.name])):
            raise ValueError(f"unknown {f.name} {value!r}; choose one of {', '.join(map(str, allowed))}")


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """The documentation string written under each field of dataclass ``cls`` (and its bases)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):  # defined where there is no source (e.g. an interactive session)
            continue
        body = tree.body[0].body
        for node, following in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant) and isinstance(following.value.value, str)):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    names = {f.name for f in dataclasses.fields(cls)}
    return {name: doc for name, doc in docs.items() if name in names}


def field_help(cls) -> dict[str, str]:
    """The first sentence of each field's documentation, for ``--help``, as plain text (no markup:
    ``:func:`~a.b``` is "b", ````x```` is "x")."""
    out = {}
    for name, doc in field_docs(cls).items():
        text = _MARKUP.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(1).startswith("~") else m.group(1),
                           " ".join(doc.split())).replace("``", "")
        end = _SENTENCE_END.search(text)
        out[name] = text if end is None else text[: end.start() + 1]
    return out


_MARKUP = re.compile(r":[a-z]+:`([^`]+)`")
# a full stop followed by a new sentence, not one of the paper's abbreviations ("Eq. 6", "App. B", "e.g. x")
_SENTENCE_END = re.compile(r"(?<!\bEq)(?<!\bEqs)(?<!\bApp)(?<!\bFig)(?<!\bSec)(?<!\be\.g)(?<!\bi\.e)(?<!\bet al)\.\s+(?=[A-Z0-9\"(])")


def _argument_type(hint):
    """The argparse ``type`` of a field's annotation (int, float or str; None for bool)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    base = args[0]
    if typing.get_origin(base) is typing.Literal:
        return type(typing.get_args(base)[0])
    return base if base in (int, float, str) else str


FLAG = "flag"
"""The key of a field's ``metadata`` naming its command-line option when it is not
``--<field>``: ``field(default=5e-4, metadata={FLAG: "--lr"})``. A boolean field named so is a
switch: ``"--paired-only"`` sets it true, ``"--no-verify"`` sets it false; a boolean field without
a name gets ``--<field>`` and ``--no-<field>``. ``{FLAG: None}``: the field has no command-line
option (e.g. a pair of numbers)."""


def flag_names(cls, *, prefix: str = "") -> dict[str, str | None]:
    """{field: its command-line option} of every field of dataclass ``cls`` (None: the field has
    none): the one place that knows which option sets which field, for :func:`add_options` and for
    whatever writes command lines (a sweep's ``memevae train`` commands).

    Example:
        >>> from memevae.training.trainer import TrainConfig
        >>> flag_names(TrainConfig)["learning_rate"], flag_names(TrainConfig)["betas"]
        ('--lr', None)
    """
    return {f.name: f.metadata.get(FLAG, "--" + (prefix + f.name).replace("_", "-"))
            for f in dataclasses.fields(cls) if f.init}


def command_line(values: dict, cls, *, prefix: str = "") -> list[str]:
    """The command-line arguments that give ``values`` ({field: value} of dataclass ``cls``; None:
    not given) by the options :func:`flag_names` names; a switch is given when it holds its option's value.

    Example:
        >>> from memevae.data import DataConfig
        >>> command_line({"paired_fraction": 0.5, "verify": False, "download": False, "limit": None}, DataConfig)
        ['--paired-fraction', '0.5', '--no-verify']
    """
    named, out = flag_names(cls, prefix=prefix), []
    for key, value in values.items():
        flag = named[key]
        if flag is None:
            raise ValueError(f"{key} has no command-line option")
        if isinstance(value, bool) and FLAG in cls.__dataclass_fields__[key].metadata:  # a switch
            out += [flag] if value != flag.startswith("--no-") else []
        elif isinstance(value, bool):
            out += [flag if value else "--no-" + flag[2:]]
        elif value is not None:
            out += [flag, str(value)]
    return out


def add_options(group, cls, *, prefix: str = "", skip=(), defaults: dict | None = None, notes: dict | None = None,
                flags: dict | None = None) -> dict[str, str]:
    """Add one command-line option per field of dataclass ``cls`` to ``group``: ``--<prefix><field>``
    (or the option its metadata names, :data:`FLAG`) with the field's type, its choices when
    ``Literal``, and its first documented sentence plus its default as help. Every option defaults
    to None ("not given"), so the dataclass keeps its own defaults. ``defaults`` overrides what the
    help shows as default (e.g. per model); ``notes`` puts a word before a field's help (e.g.
    "MEME:"); ``flags`` gives a field other option strings (e.g. {"learning_rate": ["--lr",
    "--learning-rate"]}). Returns {argparse dest: field name}.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Options:
        ...     points: int = 2000
        ...     '''Codes embedded.'''
        >>> parser = argparse.ArgumentParser()
        >>> add_options(parser, Options, prefix="tsne-")
        {'tsne_points': 'points'}
        >>> parser.parse_args(["--tsne-points", "10"]).tsne_points
        10
    """
    helps, hints, dests, named = field_help(cls), _hints(cls), {}, flag_names(cls, prefix=prefix)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init or named[f.name] is None:
            continue
        names = (flags or {}).get(f.name) or [named[f.name]]
        dest = (prefix + f.name).replace("-", "_")
        hint = hints[f.name]
        switch = hint is bool and FLAG in f.metadata
        shown = (defaults or {}).get(f.name, f.default if f.default is not dataclasses.MISSING and not switch else None)
        text = " ".join(filter(None, ((notes or {}).get(f.name), helps.get(f.name, ""))))
        if shown is not None:
            text += f" (default {shown})" if not isinstance(shown, str) or "default" not in shown else f" ({shown})"
        if switch:
            off = names[0].startswith("--no-")
            group.add_argument(*names, dest=dest, action="store_false" if off else "store_true", default=None,
                               help=text + (" (this option turns it off)" if off else ""))
        elif hint is bool:
            group.add_argument(*names, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            allowed = choices(cls, f.name)
            group.add_argument(*names, dest=dest, type=_argument_type(hint), default=None, help=text,
                               choices=list(allowed) if allowed else None, metavar=None if allowed else f.name.upper())
        dests[dest] = f.name
    return dests


def given(args, dests: dict[str, str]) -> dict:
    """{field: value} of the options in ``dests`` that the user gave."""
    return {field: getattr(args, dest) for dest, field in dests.items() if getattr(args, dest, None) is not None}


def fits(value, hint) -> bool:
    """Whether ``value`` has the annotated type ``hint``: ints count as floats, bools as neither,
    paths as text, lists and tuples as each other; a ``Literal`` asks only for its choices' type
    (which choice is :func:`check_choices`'s to say). Annotations other than these pass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return any(fits(value, type(choice)) for choice in args)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, numbers.Integral if hint is int else numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, (str, os.PathLike))
    if (origin or hint) in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(fits, value, args))
        return not args or all(fits(item, args[0]) for item in value)
    if (origin or hint) is dict:
        return isinstance(value, dict) and (not args or all(fits(k, args[0]) and fits(v, args[1]) for k, v in value.items()))
    return True


_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "true or false values"}


def describe(hint) -> str:
    """An annotated type in words, for messages: ``int | None`` is "an integer or None"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if (origin or hint) in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"a list of {len(args)} values"
        return "a list" + (f" of {_PLURALS.get(args[0], 'values')}" if args else "")
    if (origin or hint) is dict:
        return "a table"
    return {type(None): "None", bool: "true or false", int: "an integer", float: "a number", str: "text"}.get(hint, str(hint))


def type_problems(cls, values: dict) -> list[str]:
    """One line per value of ``values`` ({field: value}) that does not have the annotated type of
    that field of dataclass ``cls``, e.g. "epochs must be an integer, got 'two'"."""
    hints = _hints(cls)
    return [f"{name} must be {describe(hints[name])}, got {value!r}" for name, value in values.items()
            if name in hints and not fits(value, hints[name])]


def build(cls, values: dict, what: str):
    """``cls(**values)``; an unknown key, a value of another type than its field's, or a value
    outside a ``Literal`` field's choices a one-line error."""
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{what} has no option(s) {', '.join(unknown)}; its options are {', '.join(sorted(known))}")
    wrong = type_problems(cls, values)
    if wrong:
        raise ValueError(f"{what}: {'; '.join(wrong)}")
    built = cls(**values)
    check_choices(built)
    return built


def as_hinted(value, hint):
    """``value`` as read back from JSON, with its lists turned into tuples where ``hint`` (an
    annotated type) says tuple, also inside lists, tuples, dicts and unions; anything else as it is.

    >>> as_hinted({"a": [32, 5]}, dict[str, tuple[int, ...]]), as_hinted([1, 2], tuple[int, ...] | None)
    ({'a': (32, 5)}, (1, 2))
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        fitting = [arg for arg in args if fits(value, arg)]
        return as_hinted(value, fitting[0]) if fitting else value
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        items = args if origin is tuple and args and args[-1] is not Ellipsis else [args[0] if args else typing.Any] * len(value)
        converted = [as_hinted(item, item_hint) for item, item_hint in zip(value, items)]
        return tuple(converted) if origin is tuple else converted
    if hint is tuple and isinstance(value, list):
        return tuple(value)
    if origin is dict and isinstance(value, dict) and args:
        return {key: as_hinted(item, args[1]) for key, item in value.items()}
    return value


def hints(cls) -> dict:
    """The resolved annotated type of each field of dataclass ``cls``."""
    return _hints(cls)


__all__ = ["FLAG", "flag_names", "command_line", "choices", "check_choices", "field_docs", "field_help", "add_options", "given", "fits", "describe", "type_problems", "build",
           "as_hinted", "hints"]
