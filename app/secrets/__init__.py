"""Secrets wallet library (secrets.md): at-rest envelopes, sealed delivery, providers, resolver, residency.

Entry points for the server layer:

* ``wallet.SecretsWallet.build(...)`` — start-up composition (cipher or None, metrics, provider registry,
  audit sink, broker client); ``require_cipher()`` raises the 500 ``NOETL_ENCRYPTION_KEY is not configured``.
* ``SecretsWallet.resolver(credential_lookup=, start_event_lookup=, catalog_lookup=, cache_get=, cache_put=)``
  — §4.2 over injected async lookups; ``SecretResolver.resolve(identifier, execution_id)`` → ``Resolved``.
* ``sealed_service.SealedService`` — the sealed endpoint (§3.2) and the broker endpoint (§6.2).
* ``response.credential_response_json`` / ``response_for`` — the exact GET body (= sealed plaintext).
* ``envelope.EnvelopeCipher`` (seal/open/rewrap), ``rotation.rotate_table``, ``envelope.count_key_versions``.
* ``cache.keychain_cache_key`` / ``effective_cache_ttl`` / ``should_refresh`` for the keychain routes.
"""
