"""The demo playbook the dev stack runs at start: register, execute, wait, print the outcome."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import aiohttp

DEMO = Path(__file__).resolve().parents[2] / "app" / "playbooks" / "demo" / "hello.yaml"


async def run_demo(api_url: str, timeout: float = 60.0) -> bool:
    """True when the demo playbook reached COMPLETED."""
    if not DEMO.exists():
        print("demo: playbook file missing", flush=True)
        return False
    content = base64.b64encode(DEMO.read_bytes()).decode()
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{api_url}/api/catalog/register", json={"content": content, "resource_type": "Playbook"}
        ) as r:
            if r.status == 404:
                print("demo: the catalog API is not available in this build yet", flush=True)
                return False
            reg = await r.json()
            if r.status != 200:
                print(f"demo: register failed: {reg}", flush=True)
                return False
        async with http.post(f"{api_url}/api/execute", json={"path": reg["path"], "workload": {}}) as r:
            started = await r.json()
            if r.status != 200:
                print(f"demo: execute failed: {started}", flush=True)
                return False
        eid = started["execution_id"]
        print(f"demo: started {reg['path']} as execution {eid}", flush=True)
        deadline = time.monotonic() + timeout
        status: dict[str, object] = {}
        while time.monotonic() < deadline:
            async with http.get(f"{api_url}/api/executions/{eid}/status") as r:
                if r.status == 200:
                    status = await r.json()
                    if status.get("status") in {"COMPLETED", "FAILED", "CANCELLED"}:
                        break
            await asyncio.sleep(0.25)
        async with http.get(f"{api_url}/api/executions/{eid}") as r:
            detail = await r.json() if r.status == 200 else {}
    print(
        f"demo: execution {eid} {status.get('status', 'TIMEOUT')}; steps {status.get('completed_steps')}; "
        f"result {json.dumps(detail.get('result'))}",
        flush=True,
    )
    return status.get("status") == "COMPLETED"
