"""The python tool's semantics (dsl §2.3.1) and its limits (timeout, memory, crash isolation)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psutil
import pytest

from app.worker.pypool import PythonPool
from app.worker.tools import python as py
from app.worker.tools.base import ToolCancelled, ToolError
from tests.unit.worker.helpers import make_ctx

pytestmark = pytest.mark.unit


@pytest.fixture
async def pool() -> AsyncIterator[PythonPool]:
    p = PythonPool(size=2, memory_mb=256)
    py.configure(p)
    yield p
    await py.shutdown()


async def run(code: str, inputs: dict | None = None, **cfg: object) -> object:  # type: ignore[type-arg]
    return await py.run({"code": code, "input": inputs or {}, **cfg}, make_ctx(render_context={"k": 7}))


async def test_inputs_are_globals_and_result_is_the_output(pool: PythonPool) -> None:
    out = await run(
        "result = {'sum': a + b, 'input_data': input_data, 'args': args, 'ctx': context['k'],"
        " 'j': json.dumps([1])}",
        {"a": 1, "b": 2},
    )
    assert out == {"sum": 3, "input_data": {"a": 1, "b": 2}, "args": {"a": 1, "b": 2}, "ctx": 7, "j": "[1]"}


async def test_input_data_key_wins(pool: PythonPool) -> None:
    assert await run("result = input_data", {"input_data": [1, 2], "x": 1}) == [1, 2]


async def test_main_called_with_bound_params_and_async_main(pool: PythonPool) -> None:
    assert await run("def main(a, c=5):\n    return a + c", {"a": 1, "b": 2}) == 6
    assert await run("def main(**kw):\n    return sorted(kw)", {"a": 1, "b": 2}) == ["a", "b"]
    code = "import asyncio\nasync def main(a):\n    await asyncio.sleep(0)\n    return a * 10"
    assert await run(code, {"a": 4}) == 40


async def test_top_level_return(pool: PythonPool) -> None:
    assert await run("x = n * 3\nif x > 5:\n    return {'x': x}\nreturn None", {"n": 2}) == {"x": 6}


async def test_libs_and_stdout_capture(pool: PythonPool) -> None:
    out = await run("print('hello')", libs={"m": "math"})
    assert out == {"stdout": "hello\n", "stderr": ""}
    assert (
        await run(
            "result = m.floor(2.5) + sq(4)", libs={"m": "math", "sq": {"from": "math", "import": "isqrt"}}
        )
        == 4
    )


async def test_non_json_results_fall_back_to_str(pool: PythonPool) -> None:
    assert await run("import datetime\nresult = {'d': datetime.date(2026, 1, 2)}") == {"d": "2026-01-02"}


async def test_exception_is_an_error_with_its_message_and_output(pool: PythonPool) -> None:
    with pytest.raises(ToolError) as info:
        await run("print('before')\nraise ValueError('kaboom')")
    assert info.value.message == "ValueError: kaboom"
    assert info.value.data["stdout"] == "before\n"
    with pytest.raises(ToolError, match="AssertionError"):
        await run("assert 1 == 2")


async def test_timeout_kills_and_replaces_the_runner(pool: PythonPool) -> None:
    with pytest.raises(ToolError) as info:
        await run("while True:\n    pass", timeout_seconds=0.5)
    assert info.value.code == "timeout"
    assert pool.replaced == 1
    assert await run("result = 1") == 1  # the pool still serves


async def test_memory_limit_fails_the_step_not_the_worker(pool: PythonPool) -> None:
    with pytest.raises(ToolError) as info:
        await run("blob = bytearray(600 * 1024 * 1024)")
    assert "memory" in info.value.message.lower()
    assert await run("result = 'alive'") == "alive"


async def test_sys_exit_and_os_exit_do_not_break_the_pool(pool: PythonPool) -> None:
    with pytest.raises(ToolError):
        await run("import sys\nsys.exit(3)")
    with pytest.raises(ToolError) as info:
        await run("import os\nos._exit(9)")
    assert info.value.code == "killed"
    assert await run("result = 2") == 2


async def test_runners_are_reused(pool: PythonPool) -> None:
    pids = {await run("import os\nresult = os.getpid()") for _ in range(10)}
    assert len(pids) <= 2


async def test_cancellation_kills_the_runner(pool: PythonPool) -> None:
    ctx = make_ctx()
    task = asyncio.create_task(
        py.run({"code": "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(30)", "input": {}}, ctx)
    )
    await asyncio.sleep(0.3)
    runner_pids = [r.proc.pid for r in pool._all]  # noqa: SLF001 - the test checks the kill
    ctx.cancelled.set()
    with pytest.raises(ToolCancelled):
        await asyncio.wait_for(task, 10)
    dead = [p for p in runner_pids if not psutil.pid_exists(p) or psutil.Process(p).status() == "zombie"]
    assert dead, "the busy runner was killed"


async def test_env_and_cwd(pool: PythonPool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = await run(
        "import os\nresult = [os.environ['X_T'], os.getcwd()]", env={"X_T": "v"}, cwd=str(tmp_path)
    )
    assert out == ["v", str(tmp_path)]
    assert await run("import os\nresult = os.environ.get('X_T')") is None
