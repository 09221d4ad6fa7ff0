"""Playbook texts and helpers for integration tests."""

from __future__ import annotations

import base64
import textwrap
from typing import Any

from tests.support.server import Api
from tests.support.wait import eventually

LINEAR = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: linear, path: tests/linear}
workload: {n: 3}
workflow:
  - step: start
    tool: {kind: python, input: {n: "{{ n }}"}, code: "result = {'double': n * 2}"}
    next: {arcs: [{step: add}]}
  - step: add
    tool: {kind: python, input: {d: "{{ start.double }}"}, code: "result = {'sum': d + 1}"}
    next: {arcs: [{step: end}]}
  - step: end
    tool: {kind: noop}
"""

FANOUT = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: fanout, path: tests/fanout}
workflow:
  - step: start
    tool: {kind: noop}
    next:
      spec: {mode: inclusive}
      arcs: [{step: a}, {step: b}]
  - step: a
    tool: {kind: python, code: "result = {'v': 'a'}"}
    next: {arcs: [{step: join}]}
  - step: b
    tool: {kind: python, code: "result = {'v': 'b'}"}
    next: {arcs: [{step: join}]}
  - step: join
    tool: {kind: python, input: {a: "{{ a.v }}", b: "{{ b.v }}"}, code: "result = {'both': a + b}"}
"""

FAILING = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: failing, path: tests/failing}
workflow:
  - step: start
    tool: {kind: noop}
    next: {arcs: [{step: boom}]}
  - step: boom
    tool: {kind: python, code: "raise ValueError('kaboom')"}
    next: {arcs: [{step: never}]}
  - step: never
    tool: {kind: noop}
"""


def b64(text: str) -> str:
    return base64.b64encode(textwrap.dedent(text).encode()).decode()


async def register(api: Api, text: str) -> dict[str, Any]:
    status, body = await api.post(
        "/api/catalog/register", json={"content": b64(text), "resource_type": "Playbook"}
    )
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def wait_terminal(api: Api, execution_id: str, timeout: float = 20.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status, body = await api.get(f"/api/executions/{execution_id}/status")
        if status == 200 and body["status"] in ("COMPLETED", "FAILED", "CANCELLED"):
            return body  # type: ignore[no-any-return]
        return None

    return await eventually(check, timeout=timeout, what=f"execution {execution_id} terminal")
