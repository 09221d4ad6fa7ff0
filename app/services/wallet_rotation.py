"""KEK rotation (re-wrap) and key status over the credential and keychain tables (secrets.md §1.7, §3.5)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from app.db.types import Executor
from app.secrets.envelope import EnvelopeCipher
from app.secrets.metrics import SecretsMetrics
from app.secrets.rotation import clamp, rotate_table

CREDENTIAL_BATCH_SQL = "SELECT id, data_encrypted FROM credential WHERE id > $1 ORDER BY id LIMIT $2"
KEYCHAIN_BATCH_SQL = (
    "SELECT cache_key, data_encrypted FROM keychain WHERE cache_key > $1 ORDER BY cache_key LIMIT $2"
)
# Single row, no transaction, updated_at unchanged; 0 rows = the row changed meanwhile.
CREDENTIAL_UPDATE_SQL = "UPDATE credential SET data_encrypted = $3 WHERE id = $1 AND data_encrypted = $2"
KEYCHAIN_UPDATE_SQL = "UPDATE keychain SET data_encrypted = $3 WHERE cache_key = $1 AND data_encrypted = $2"

KEY_STATUS_SQL = """
SELECT wallet_key_version(data_encrypted) AS kv, count(*) AS n FROM {table}
 GROUP BY 1 ORDER BY 1
"""


class RotateIn(BaseModel):
    """POST /api/internal/wallet/rotate-kek body; ``{}`` is valid."""

    model_config = ConfigDict(extra="ignore")

    batch_size: int | None = None
    max_batches: int | None = None
    after_id: int | None = None
    after_key: str | None = None


def _rows_updated(status: str) -> int:
    # asyncpg returns "UPDATE <n>".
    return int(status.rsplit(" ", 1)[-1])


async def rotate(
    db: Executor, cipher: EnvelopeCipher, metrics: SecretsMetrics, body: RotateIn
) -> dict[str, Any]:
    """One synchronous rotation pass: the credential table, then the keychain table."""
    batch = clamp(body.batch_size, 100)
    max_batches = clamp(body.max_batches, 1000)

    async def cred_batch(after: int, limit: int) -> list[tuple[int, str]]:
        return [(r["id"], r["data_encrypted"]) for r in await db.fetch(CREDENTIAL_BATCH_SQL, after, limit)]

    async def cred_update(pk: int, old: str, new: str) -> int:
        return _rows_updated(await db.execute(CREDENTIAL_UPDATE_SQL, pk, old, new))

    async def kc_batch(after: str, limit: int) -> list[tuple[str, str]]:
        return [
            (r["cache_key"], r["data_encrypted"]) for r in await db.fetch(KEYCHAIN_BATCH_SQL, after, limit)
        ]

    async def kc_update(pk: str, old: str, new: str) -> int:
        return _rows_updated(await db.execute(KEYCHAIN_UPDATE_SQL, pk, old, new))

    cred = await rotate_table(
        "credential",
        cipher,
        cred_batch,
        cred_update,
        metrics,
        after=body.after_id or 0,
        batch_size=batch,
        max_batches=max_batches,
    )
    kc = await rotate_table(
        "keychain",
        cipher,
        kc_batch,
        kc_update,
        metrics,
        after=body.after_key or "",
        batch_size=batch,
        max_batches=max_batches,
    )
    return {
        "credential": {
            "processed": cred.processed,
            "rewrapped": cred.rewrapped,
            "skipped": cred.skipped,
            "failed": cred.failed,
            "last_id": cred.last if cred.last is not None else 0,
        },
        "keychain": {
            "processed": kc.processed,
            "rewrapped": kc.rewrapped,
            "skipped": kc.skipped,
            "failed": kc.failed,
            "last_id": 0,
            "last_key": kc.last if kc.last is not None else "",
        },
    }


async def key_status(db: Executor) -> dict[str, Any]:
    """``{"credential": {kv: n}, "keychain": {kv: n}}`` with sorted keys; non-envelope rows are ``invalid``."""
    out: dict[str, Any] = {}
    for table in ("credential", "keychain"):
        rows = await db.fetch(KEY_STATUS_SQL.format(table=table))
        out[table] = {r["kv"]: r["n"] for r in sorted(rows, key=lambda r: r["kv"].encode())}
    return out
