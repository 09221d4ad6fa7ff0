"""A long-lived python-tool runner process (stdlib only): reads jobs on stdin, answers on stdout.

Frames are a 4-byte big-endian length plus UTF-8 JSON. The worker keeps a pool of these, reuses
them between steps and kills/replaces one on timeout, memory overrun or cancellation, so a
runaway step never takes the worker down. Started as `python -I <this file> <memory_mb>`."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import io
import json
import os
import struct
import sys
import traceback
from typing import Any

MAIN_NAME = "__noetl_main__"


def _set_memory_limit(mb: int) -> None:
    if mb <= 0:
        return
    import resource

    limit = mb * 1024 * 1024
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _has_top_level_return(tree: ast.Module) -> bool:
    def walk(nodes: list[ast.stmt]) -> bool:
        for node in nodes:
            if isinstance(node, ast.Return):
                return True
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            for field in ("body", "orelse", "finalbody", "handlers"):
                child = getattr(node, field, None)
                if isinstance(child, list) and walk([c for c in child if isinstance(c, ast.stmt)]):
                    return True
                if field == "handlers" and isinstance(child, list):
                    for h in child:
                        if walk(h.body):
                            return True
        return False

    return walk(tree.body)


def _compile(code: str) -> tuple[Any, bool]:
    tree = ast.parse(code, filename="<python-tool>", mode="exec")
    if _has_top_level_return(tree):
        extra: dict[str, Any] = {"type_params": []} if sys.version_info >= (3, 12) else {}
        fn = ast.FunctionDef(  # type: ignore[call-overload,unused-ignore]
            name=MAIN_NAME,
            args=ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]),
            body=tree.body or [ast.Pass()],
            decorator_list=[],
            returns=None,
            **extra,
        )
        tree = ast.Module(body=[fn], type_ignores=[])
        ast.fix_missing_locations(tree)
        return compile(tree, "<python-tool>", "exec"), True
    return compile(tree, "<python-tool>", "exec"), False


def _libs(spec: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(spec, dict):
        return out
    for alias, target in spec.items():
        if isinstance(target, str):
            out[str(alias)] = importlib.import_module(target)
        elif isinstance(target, dict) and target.get("from"):
            module = importlib.import_module(str(target["from"]))
            out[str(alias)] = getattr(module, str(target.get("import") or alias))
    return out


def _call_main(main: Any, inputs: dict[str, Any]) -> Any:
    sig = inspect.signature(main)
    params = sig.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        kwargs = dict(inputs)
    else:
        kwargs = {
            p.name: inputs[p.name]
            for p in params
            if p.name in inputs and p.kind is not inspect.Parameter.POSITIONAL_ONLY
        }
    value = main(**kwargs)
    if inspect.isawaitable(value):
        value = asyncio.run(_await(value))
    return value


async def _await(value: Any) -> Any:
    return await value


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one python tool job; never raises (errors are reported in the answer)."""
    raw_inputs = job.get("input")
    inputs: dict[str, Any] = raw_inputs if isinstance(raw_inputs, dict) else {}
    out, err = io.StringIO(), io.StringIO()
    saved_env: dict[str, str | None] = {}
    saved_cwd = os.getcwd()
    try:
        for k, v in (job.get("env") or {}).items():
            saved_env[str(k)] = os.environ.get(str(k))
            os.environ[str(k)] = str(v)
        if job.get("cwd"):
            os.chdir(str(job["cwd"]))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code, wrapped = _compile(str(job.get("code") or ""))
            g: dict[str, Any] = {"__name__": "__noetl_tool__", "__builtins__": __builtins__}
            g.update(inputs)
            g["input_data"] = inputs["input_data"] if "input_data" in inputs else dict(inputs)
            g["args"] = inputs
            g["context"] = job.get("context") or {}
            g["json"] = json
            g.update(_libs(job.get("libs")))
            exec(code, g)
            has_result = False
            if wrapped:
                result, has_result = g[MAIN_NAME](), True
            else:
                result = g.get("result")
                if result is not None:
                    has_result = True
                elif callable(g.get("main")):
                    result, has_result = _call_main(g["main"], inputs), True
                elif "result" in g:
                    has_result = True
        if not has_result:
            result = {"stdout": out.getvalue(), "stderr": err.getvalue()}
        return {"ok": True, "result": _jsonable(result), "stdout": out.getvalue(), "stderr": err.getvalue()}
    except MemoryError:
        return {
            "ok": False,
            "code": "memory",
            "error": "MemoryError: the python step exceeded its memory limit",
            "stdout": out.getvalue()[-65536:],
            "stderr": err.getvalue()[-65536:],
            "tainted": True,
        }
    except BaseException as exc:  # a failing step must not end the runner
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return {
            "ok": False,
            "code": "exception",
            "error": message,
            "traceback": "".join(tb[-8:])[-8000:],
            "stdout": out.getvalue()[-65536:],
            "stderr": err.getvalue()[-65536:],
            "tainted": isinstance(exc, SystemExit | KeyboardInterrupt),
        }
    finally:
        with contextlib.suppress(OSError):
            os.chdir(saved_cwd)
        for k, old in saved_env.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def _read_exact(stream: Any, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _exit_with_parent() -> None:
    """A runner whose worker died (kill -9) must not keep running its step as an orphan."""
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve() -> None:
    """The runner loop: one job at a time until stdin closes."""
    _exit_with_parent()
    memory_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    # stray writes to fd 1/2 (os.write, C extensions) must not corrupt the protocol stream
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    _set_memory_limit(memory_mb)
    while True:
        head = _read_exact(proto_in, 4)
        if head is None:
            return
        (size,) = struct.unpack(">I", head)
        raw = _read_exact(proto_in, size)
        if raw is None:
            return
        try:
            answer = run_job(json.loads(raw))
            data = json.dumps(answer).encode()
        except MemoryError:
            data = json.dumps(
                {"ok": False, "code": "memory", "error": "MemoryError", "tainted": True}
            ).encode()
        proto_out.write(struct.pack(">I", len(data)) + data)


if __name__ == "__main__":
    serve()
