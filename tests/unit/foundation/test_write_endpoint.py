"""The write-metrics endpoint label: the names secrets.md §8 fixes, and a low-cardinality default."""

import pytest

from handlers.http.middleware import write_endpoint


@pytest.mark.parametrize(
    ("method", "route", "expected"),
    [
        ("POST", "/api/credentials", "credentials_upsert"),
        ("DELETE", "/api/credentials/{identifier}", "credentials_delete"),
        ("POST", "/api/keychain/{catalog_id}/{keychain_name}", "keychain_set"),
        ("DELETE", "/api/keychain/{catalog_id}/{keychain_name}", "keychain_delete"),
        ("POST", "/api/events/batch", "events_batch"),
        ("POST", "/api/commands/{event_id}/claim", "commands_claim"),
        ("POST", "/api/worker/pool/register", "worker_pool_register"),
        ("POST", "/api/internal/outbox/mark-failed", "internal_outbox_mark_failed"),
    ],
)
def test_write_endpoint_label(method: str, route: str, expected: str) -> None:
    assert write_endpoint(method, route) == expected
