-- Key-status support (secrets.md §1.7): the stored dek.kv of a credential/keychain row, or 'invalid'
-- for any value that is not a JSON object with dek.kv (L0 plaintext, L1 base64, corrupt text). The
-- exception guard means GET /api/internal/wallet/key-status never fails on a bad row.
CREATE OR REPLACE FUNCTION wallet_key_version(value TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL OR value !~ '^\s*\{' THEN
        RETURN 'invalid';
    END IF;
    RETURN COALESCE((value::jsonb) -> 'dek' ->> 'kv', 'invalid');
EXCEPTION WHEN others THEN
    RETURN 'invalid';
END
$$;

-- The audit query filters by time range alone too (secrets.md §3.6).
CREATE INDEX IF NOT EXISTS idx_secret_audit_time ON secret_audit (occurred_at DESC);
