"""Your own code in a study: attention modules (and backbones) named by a reference, and their identity.

A study arm names an attention module ecasweep does not ship in one of three ways::

    attention = "my_attn.py:MyAttention"      # a file, relative to the study file (or absolute)
    attention = "my_pkg.attn:MyAttention"     # an importable module
    attention = "mine"                        # a name an installed package registers in the
                                              #   entry-point group ``ecasweep.attention``

The contract (docs/user-modules.md has a complete example): ``cls(channels, **kwargs)`` returns an
``nn.Module`` that maps a feature map (N, C, H, W) to one of the same shape. ``cls`` may also be a
function that returns such a module. A backbone is named the same way (``backbone =
"my_net.py:build"``, entry-point group ``ecasweep.backbone``): ``build(make_attention, num_classes,
in_channels)`` returns the network, where ``make_attention(channels)`` gives a fresh attention
module for a feature map of ``channels`` channels.

Identity: a study records, for each reference, where the code is (the absolute path of a file, or
the module's name) and a sha256 of its source (the file; for a module, every ``.py`` file of its
top-level package) with the package's version. Whoever runs a cell (``run``, ``worker``, a SLURM job)
imports the code from that path or package on its own machine and refuses to run when its copy
hashes differently. Code is never read from the storage.

Nothing here imports torch at import time: parsing and hashing references is torch-free, loading
and checking the code imports it.

Example:
    >>> parse("my_attn.py:MyAttention")
    ('my_attn.py', 'MyAttention')
    >>> is_file_target("attn/my_attn.py"), is_file_target("my_pkg.attn")
    (True, False)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    import importlib.metadata

from ..errors import EcasweepError

ATTENTION_GROUP = "ecasweep.attention"
BACKBONE_GROUP = "ecasweep.backbone"
GROUPS = {"attention": ATTENTION_GROUP, "backbone": BACKBONE_GROUP}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
#: what a user's code must be, for messages
CONTRACTS = {"attention": "cls(channels, **kwargs) returns an nn.Module that keeps its input's shape",
             "backbone": "build(make_attention, num_classes, in_channels) returns an nn.Module"}
#: the input of the shape check: small, so that it costs nothing before the first trial
CHECK_SIZE = (2, 8, 8)  # batch, height, width


class UserCodeError(EcasweepError, ValueError):
    """A user's module that cannot be found, imported or used; one line naming the file and what."""


# References --------------------------------------------------------------------------------------

def is_reference(name: Any) -> bool:
    """A ``target:object`` reference to user code (a file or a module), not a built-in name."""
    return isinstance(name, str) and ":" in name


def parse(name: str) -> tuple[str, str]:
    """``"file.py:Class"`` / ``"pkg.mod:Class"`` -> (target, object)."""
    target, _, obj = name.rpartition(":")
    if not target or not _IDENTIFIER.fullmatch(obj or ""):
        raise UserCodeError(f"{name!r}: expected 'file.py:Class' (a file, relative to the study file) or "
                            "'package.module:Class' (importable)")
    if not is_file_target(target) and not _IDENTIFIER.fullmatch(target):
        raise UserCodeError(f"{name!r}: {target!r} is neither a .py file nor a module name like 'my_pkg.attn'")
    return target, obj


def is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def resolve(name: str, base: Path | str | None = None) -> str:
    """The reference a worker anywhere can load: a file made absolute (relative to ``base``, the
    study file's folder); a module or an entry-point name unchanged. A missing file is an error."""
    if not is_reference(name):
        return name
    target, obj = parse(name)
    if not is_file_target(target):
        return name
    path = Path(target).expanduser()
    if not path.is_absolute():
        path = Path(base or ".") / path
    path = Path(os.path.abspath(path))
    if not path.is_file():
        where = f" (looked in {path.parent})" if not Path(target).is_absolute() else ""
        raise UserCodeError(f"{target}: no such file{where}")
    return f"{path}:{obj}"


def display_name(name: str) -> str:
    """A short name for ids and labels: the object's name of a reference, else the name itself.

    >>> display_name("/tmp/x/my_attn.py:MyAttention"), display_name("mine")
    ('MyAttention', 'mine')
    """
    return name.rpartition(":")[2].rpartition(".")[2] if is_reference(name) else name


# Entry points ------------------------------------------------------------------------------------

_ENTRY_POINTS: dict[tuple, dict[str, importlib.metadata.EntryPoint]] = {}


def entry_points(kind: str = "attention") -> dict[str, importlib.metadata.EntryPoint]:
    """The names installed packages register for ``kind`` (attention or backbone); read once per
    ``sys.path``."""
    import importlib.metadata  # here: 0.05 s that a study of built-ins never pays

    key = (kind, tuple(sys.path))
    if key not in _ENTRY_POINTS:
        _ENTRY_POINTS[key] = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUPS[kind])}
    return _ENTRY_POINTS[key]


def entry_point(name: str, kind: str = "attention") -> importlib.metadata.EntryPoint | None:
    if not isinstance(name, str) or is_reference(name):
        return None
    return entry_points(kind).get(name)


def _dist_name(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else "an installed package"


def check_shadowing(builtins: Any, kind: str = "attention") -> None:
    """An entry point named like a built-in is refused: which of the two a study meant is unclear."""
    for name, ep in entry_points(kind).items():
        if name in builtins:
            raise UserCodeError(f"entry point {name!r} ({GROUPS[kind]}, from {_dist_name(ep)}) shadows the "
                                f"built-in {kind} {name!r}; the package must register another name")


def is_user(name: Any, builtins: Any, kind: str = "attention") -> bool:
    """Whether ``name`` names user code: a reference, or an entry point that is not a built-in."""
    if is_reference(name):
        return True
    return isinstance(name, str) and name not in builtins and entry_point(name, kind) is not None


# Identity ----------------------------------------------------------------------------------------

def _sha256_files(files: list[Path], root: Path | None) -> str:
    digest = hashlib.sha256()
    for path in files:
        if root is not None:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        data = path.read_bytes()
        digest.update(str(len(data)).encode() + b"\0" + data)
    return digest.hexdigest()


_DISTRIBUTIONS: dict[tuple, Mapping[str, list[str]]] = {}


def _module_files(module: str) -> tuple[list[Path], Path | None, str | None]:
    """The source files of ``module``'s top-level package (or module), their root, and its version."""
    import importlib.metadata

    top = module.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError) as e:
        raise UserCodeError(f"{module}: cannot be imported: {type(e).__name__}: {_one_line(e)}") from None
    if spec is None:
        raise UserCodeError(f"{module}: no module named {top!r} (is its package installed, or on PYTHONPATH?)")
    if spec.submodule_search_locations:
        roots = [Path(p) for p in spec.submodule_search_locations]
        files = sorted(p for root in roots for p in root.rglob("*.py") if "__pycache__" not in p.parts)
        root = roots[0].parent
    elif spec.origin and spec.origin.endswith(".py"):
        files, root = [Path(spec.origin)], Path(spec.origin).parent
    else:
        files, root = [], None
    version = None
    key = tuple(sys.path)
    if key not in _DISTRIBUTIONS:  # a scan of every installed distribution: once per sys.path
        _DISTRIBUTIONS[key] = importlib.metadata.packages_distributions()
    for dist in _DISTRIBUTIONS[key].get(top, []):
        try:
            version = importlib.metadata.version(dist)
            break
        except importlib.metadata.PackageNotFoundError:
            continue
    return files, root, version


def identify(name: str, source: str | None = None, kind: str = "attention") -> dict[str, Any]:
    """The identity record of a resolved reference (see ``resolve``) or entry-point name: where the
    code is, its sha256 and version. ``source``: the reference as the study wrote it."""
    record: dict[str, Any] = {"kind": kind, "source": source or name, "path": None, "module": None,
                              "object": None, "entry_point": None, "sha256": None, "version": None}
    if not is_reference(name):
        ep = entry_point(name, kind)
        if ep is None:
            raise UserCodeError(f"{name!r}: no {kind} of that name (neither built-in nor an entry point "
                                f"in {GROUPS[kind]})")
        record["entry_point"] = name
        target, obj = ep.value.partition(":")[0].strip(), ep.value.partition(":")[2].strip()
        record["module"], record["object"] = target, obj or None
        files, root, version = _module_files(target)
        dist = getattr(ep, "dist", None)
        record["version"] = dist.version if dist is not None else version
    else:
        target, obj = parse(name)
        record["object"] = obj
        if is_file_target(target):
            path = Path(target)
            record["path"] = str(path)
            try:  # the file's own sha256 (what `sha256sum my_attn.py` prints)
                record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError as e:
                raise UserCodeError(f"{path}: cannot read: {e.strerror or e}") from None
            return record
        record["module"] = target
        files, root, record["version"] = _module_files(target)
    record["sha256"] = _sha256_files(files, root) if files else None
    return record


def where(record: Mapping[str, Any]) -> str:
    """The file or package a record names, for messages."""
    if record.get("path"):
        return record["path"]
    if record.get("entry_point"):
        return f"entry point {record['entry_point']!r} ({record.get('module')})"
    return f"package {str(record.get('module', '')).split('.')[0]!r}"


def changed(stored: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> str | None:
    """What differs between two studies' code records (``StudySpec.code``), as one phrase; None if
    the code is the same. Records are matched by the reference as the study wrote it."""
    old = {r.get("source"): r for r in (stored or {}).values()}
    new = {r.get("source"): r for r in (current or {}).values()}
    for source in sorted(old.keys() & new.keys(), key=str):
        a, b = old[source], new[source]
        if a.get("sha256") != b.get("sha256"):
            return (f"{where(b)} changed since the study ran (sha256 {str(a.get('sha256'))[:12]} there, "
                    f"{str(b.get('sha256'))[:12]} now)")
        if a.get("version") != b.get("version"):
            return f"{where(b)} is version {b.get('version')} now, {a.get('version')} when the study ran"
    return None


def verify(code: Mapping[str, Mapping[str, Any]], study: str = "") -> None:
    """Refuse to run when this machine's copy of a study's code is not the one it was run with: one
    line naming the file (a worker on another machine, a SLURM job, a resumed run)."""
    label = f"study {study!r}" if study else "the study"
    for ref, stored in code.items():
        try:
            current = identify(ref, stored.get("source"), stored.get("kind", "attention"))
        except UserCodeError as e:
            raise UserCodeError(f"{label} runs {stored.get('source', ref)} but here {e}") from None
        difference = changed({ref: stored}, {ref: current})
        if difference:
            raise UserCodeError(f"{label} was run with other code: {difference}; results of two versions "
                                "never meet in one study: restore it, or start a new study with --name")


# Loading -----------------------------------------------------------------------------------------

_FILE_MODULES: dict[tuple[str, str], Any] = {}


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _user_line(e: BaseException, path: str) -> str:
    """``, line N`` of the innermost frame in ``path`` of the traceback of ``e``, if any."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) == path]
    return f", line {frames[-1].lineno}" if frames else ""


def _load_file(path: str) -> Any:
    """The module of a .py file, executed from the bytes hashed (cached per path and content)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UserCodeError(f"{path}: cannot read: {e.strerror or e}") from None
    sha = hashlib.sha256(data).hexdigest()
    cached = _FILE_MODULES.get((path, sha))
    if cached is not None:
        return cached
    name = f"ecasweep_user.{re.sub(r'[^A-Za-z0-9_]', '_', Path(path).stem)}_{sha[:12]}"
    try:
        code = compile(data, path, "exec")
    except SyntaxError as e:
        raise UserCodeError(f"{path}, line {e.lineno}: syntax error: {e.msg}") from None
    spec = importlib.util.spec_from_loader(name, loader=None, origin=path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = path
    sys.modules[name] = module  # dataclasses, pickling and typing look a class's module up by name
    try:
        exec(code, module.__dict__)
    except Exception as e:  # noqa: BLE001  (whatever the user's code raises, said in one line)
        del sys.modules[name]
        raise UserCodeError(f"{path}{_user_line(e, path)}: importing it raised {type(e).__name__}: "
                            f"{_one_line(e)}") from None
    _FILE_MODULES[(path, sha)] = module
    return module


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except SyntaxError as e:
        raise UserCodeError(f"{e.filename}, line {e.lineno}: syntax error: {e.msg}") from None
    except ModuleNotFoundError as e:
        if e.name and module.startswith(e.name) and (module == e.name or module.startswith(e.name + ".")):
            raise UserCodeError(f"{what}: no module named {e.name!r} (is its package installed, or on "
                                "PYTHONPATH?)") from None
        raise UserCodeError(f"{what}: importing {module} raised ModuleNotFoundError: {_one_line(e)}") from None
    except Exception as e:  # noqa: BLE001
        frames = traceback.extract_tb(e.__traceback__)
        at = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
        raise UserCodeError(f"{what}: importing {module} raised {type(e).__name__}: {_one_line(e)}{at}") from None


def _attribute(module: Any, obj: str, what: str) -> Any:
    value = module
    for part in obj.split("."):
        if not hasattr(value, part):
            defined = sorted(n for n, v in vars(module).items()
                             if inspect.isclass(v) and getattr(v, "__module__", None) == module.__name__)
            raise UserCodeError(f"{what}: no {obj!r} in it; it defines: {', '.join(defined) or 'no classes'}")
        value = getattr(value, part)
    return value


def load(name: str, kind: str = "attention") -> Callable[..., Any]:
    """The class (or function) a resolved reference or entry-point name names, checked to be one
    that can build an ``nn.Module`` (an ``nn.Module`` subclass, or a function)."""
    if is_reference(name):
        target, obj = parse(name)
        if is_file_target(target):
            what = target
            if not Path(target).is_file():
                raise UserCodeError(f"{target}: no such file")
            module = _load_file(os.path.abspath(target))
        else:
            what = name
            module = _import(target, name)
        value = _attribute(module, obj, what)
    else:
        ep = entry_point(name, kind)
        if ep is None:
            raise UserCodeError(f"{name!r}: no {kind} of that name (neither built-in nor an entry point "
                                f"in {GROUPS[kind]})")
        try:
            value = ep.load()
        except Exception as e:  # noqa: BLE001
            raise UserCodeError(f"entry point {name!r} ({GROUPS[kind]} = {ep.value}, from {_dist_name(ep)}) "
                                f"failed to load: {type(e).__name__}: {_one_line(e)}") from None
        what = f"entry point {name!r} ({ep.value})"
    import torch.nn as nn

    if inspect.isclass(value):
        if not issubclass(value, nn.Module):
            raise UserCodeError(f"{what}: {value.__name__} is not an nn.Module subclass; the contract: "
                                f"{CONTRACTS[kind]}")
    elif not callable(value):
        raise UserCodeError(f"{what}: {display_name(name)} is a {type(value).__name__}, not a class or a "
                            "function returning an nn.Module")
    return value


def parameters(factory: Callable[..., Any], skip: int = 1) -> tuple[dict[str, Any], bool]:
    """The keyword arguments ``factory`` takes after its first ``skip`` positional ones, with their
    defaults (``inspect.Parameter.empty`` for none), and whether it takes any (``**kwargs``)."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}, True
    params = list(sig.parameters.values())
    named: dict[str, Any] = {}
    var_kw = False
    positional = 0
    for p in params:
        if p.kind == p.VAR_KEYWORD:
            var_kw = True
        elif p.kind == p.VAR_POSITIONAL:
            continue
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and positional < skip:
            positional += 1
        elif p.kind != p.POSITIONAL_ONLY:
            named[p.name] = p.default
    return named, var_kw


def check_kwargs(name: str, factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """A keyword the class does not take is an error naming what it takes."""
    named, var_kw = parameters(factory)
    unknown = [key for key in kwargs if key not in named and not var_kw]
    if unknown:
        raise UserCodeError(f"{display_name(name)} does not take {', '.join(unknown)}; it takes: "
                            f"{', '.join(named) or 'no keyword arguments'}")
    missing = [key for key, default in named.items() if default is inspect.Parameter.empty and key not in kwargs]
    if missing:
        raise UserCodeError(f"{display_name(name)} needs {', '.join(missing)}; give it in the arm")


def create(name: str, channels: int, **kwargs: Any) -> Any:
    """Build the user's attention module for ``channels`` channels (``create_attention``'s user half)."""
    import torch.nn as nn

    factory = load(name, "attention")
    check_kwargs(name, factory, kwargs)
    module = factory(channels, **kwargs)
    if not isinstance(module, nn.Module):
        raise UserCodeError(f"{display_name(name)}({channels}, ...) returned {type(module).__name__}, not an "
                            "nn.Module")
    module._ecasweep_attention = True  # counted as attention by summarize (attention_params)
    return module


def check_shape(name: str, channels: int, **kwargs: Any) -> None:
    """Build the module for ``channels`` and run it on a small tensor: the output must have the
    input's shape. Raises ``UserCodeError`` naming the module and what it did."""
    import torch

    module = create(name, channels, **kwargs)
    generator = torch.Generator().manual_seed(0)
    batch, height, width = CHECK_SIZE
    x = torch.randn(batch, channels, height, width, generator=generator)
    try:
        with torch.no_grad():
            y = module(x)
    except Exception as e:  # noqa: BLE001
        raise UserCodeError(f"{display_name(name)} failed on a ({batch}, {channels}, {height}, {width}) input: "
                            f"{type(e).__name__}: {_one_line(e)}") from None
    shape = tuple(getattr(y, "shape", ()))
    if not isinstance(y, torch.Tensor) or shape != tuple(x.shape):
        got = f"shape {shape}" if isinstance(y, torch.Tensor) else type(y).__name__
        raise UserCodeError(f"{display_name(name)} maps a {tuple(x.shape)} input to {got}; an attention module "
                            "must return a tensor of its input's shape (N, C, H, W)")
