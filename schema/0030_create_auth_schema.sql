-- The gateway's identity store (gateway.md §6.3): users, roles, playbook grants, sessions, audit.
-- Only the server reads or writes it; the gateway reaches it through /api/auth/* with the internal token.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE OR REPLACE FUNCTION auth.update_updated_at() RETURNS TRIGGER
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at = now();
    RETURN NEW;
END
$$;

CREATE TABLE IF NOT EXISTS auth.users (
    user_id       BIGSERIAL PRIMARY KEY,
    auth0_id      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL UNIQUE CHECK (email ~* '^[^@\s]+@[^@\s]+$'),
    display_name  TEXT,
    profile_data  JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_login_at TIMESTAMPTZ,
    is_active     BOOLEAN NOT NULL DEFAULT TRUE
);
CREATE TRIGGER users_updated_at BEFORE UPDATE ON auth.users
    FOR EACH ROW EXECUTE FUNCTION auth.update_updated_at();

CREATE TABLE IF NOT EXISTS auth.roles (
    role_id        SERIAL PRIMARY KEY,
    role_name      TEXT NOT NULL UNIQUE CHECK (role_name = lower(role_name)),
    description    TEXT,
    is_system_role BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS auth.permissions (
    permission_id   SERIAL PRIMARY KEY,
    permission_name TEXT NOT NULL UNIQUE,
    resource_type   TEXT NOT NULL,
    action          TEXT NOT NULL,
    description     TEXT
);

CREATE TABLE IF NOT EXISTS auth.user_roles (
    user_id    BIGINT NOT NULL REFERENCES auth.users (user_id) ON DELETE CASCADE,
    role_id    INTEGER NOT NULL REFERENCES auth.roles (role_id) ON DELETE CASCADE,
    granted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    granted_by BIGINT REFERENCES auth.users (user_id),
    expires_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE IF NOT EXISTS auth.role_permissions (
    role_id       INTEGER NOT NULL REFERENCES auth.roles (role_id) ON DELETE CASCADE,
    permission_id INTEGER NOT NULL REFERENCES auth.permissions (permission_id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission_id)
);

CREATE TABLE IF NOT EXISTS auth.playbook_permissions (
    permission_id BIGSERIAL PRIMARY KEY,
    role_id       INTEGER NOT NULL REFERENCES auth.roles (role_id) ON DELETE CASCADE,
    playbook_path TEXT NOT NULL CHECK (playbook_path ~ '^[a-z0-9/_*%-]+$'),
    can_execute   BOOLEAN NOT NULL DEFAULT FALSE,
    can_view      BOOLEAN NOT NULL DEFAULT FALSE,
    can_edit      BOOLEAN NOT NULL DEFAULT FALSE,
    can_delete    BOOLEAN NOT NULL DEFAULT FALSE,
    can_modify    BOOLEAN NOT NULL DEFAULT FALSE, -- legacy column; folded into can_edit
    allow_pattern TEXT,
    deny_pattern  TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_playbook_permissions_role ON auth.playbook_permissions (role_id);

CREATE TABLE IF NOT EXISTS auth.sessions (
    session_id          BIGSERIAL PRIMARY KEY,
    user_id             BIGINT NOT NULL REFERENCES auth.users (user_id) ON DELETE CASCADE,
    session_token       VARCHAR(255) NOT NULL UNIQUE,
    auth0_token         TEXT,          -- SHA-256 of the Auth0 token, never the token itself
    auth0_refresh_token TEXT,          -- never written
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at          TIMESTAMPTZ NOT NULL,
    last_activity_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    ip_address          INET,
    user_agent          TEXT,
    is_active           BOOLEAN NOT NULL DEFAULT TRUE,
    CHECK (expires_at > created_at)
);
CREATE INDEX IF NOT EXISTS idx_sessions_user ON auth.sessions (user_id);

CREATE TABLE IF NOT EXISTS auth.audit_log (
    audit_id    BIGSERIAL PRIMARY KEY,
    user_id     BIGINT,
    event_type  TEXT NOT NULL,
    status      TEXT NOT NULL,
    resource    TEXT,
    details     JSONB,
    ip          INET,
    user_agent  TEXT,
    occurred_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION auth.cleanup_expired_sessions() RETURNS INTEGER
LANGUAGE plpgsql AS $$
DECLARE n INTEGER;
BEGIN
    UPDATE auth.sessions SET is_active = FALSE WHERE is_active AND expires_at <= now();
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- A wildcard pattern ('*' or '%' = any run, everything else literal) as a LIKE pattern with ESCAPE '\'.
CREATE OR REPLACE FUNCTION auth.pattern_to_like(pattern TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE AS $$
    SELECT replace(replace(replace(pattern, '\', '\\'), '_', '\_'), '*', '%')
$$;

-- The decision rule of gateway.md §5.2: any grant row reached through a non-expired role allows the
-- path (its own deny_pattern limits only that row) and has the capability of the action.
CREATE OR REPLACE FUNCTION auth.check_playbook_permission(p_user BIGINT, p_path TEXT, p_action TEXT)
RETURNS BOOLEAN
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM auth.user_roles ur
        JOIN auth.playbook_permissions pp ON pp.role_id = ur.role_id
        WHERE ur.user_id = p_user
          AND (ur.expires_at IS NULL OR ur.expires_at > now())
          AND (pp.playbook_path = p_path
               OR (pp.allow_pattern IS NOT NULL AND p_path LIKE auth.pattern_to_like(pp.allow_pattern) ESCAPE '\'))
          AND (pp.deny_pattern IS NULL OR p_path NOT LIKE auth.pattern_to_like(pp.deny_pattern) ESCAPE '\')
          AND CASE lower(btrim(p_action))
                WHEN 'execute' THEN pp.can_execute
                WHEN 'view' THEN pp.can_view
                WHEN 'edit' THEN pp.can_edit OR pp.can_modify
                WHEN 'modify' THEN pp.can_edit OR pp.can_modify
                WHEN 'delete' THEN pp.can_delete
                ELSE FALSE
              END
    )
$$;

INSERT INTO auth.roles (role_name, description, is_system_role) VALUES
    ('admin', 'Full access to every playbook and route', TRUE),
    ('developer', 'Execute, view and edit playbooks outside system/*', TRUE),
    ('analyst', 'Execute and view data/* playbooks', TRUE),
    ('viewer', 'View playbooks', TRUE)
ON CONFLICT (role_name) DO NOTHING;

INSERT INTO auth.permissions (permission_name, resource_type, action) VALUES
    ('playbook:execute', 'playbook', 'execute'),
    ('playbook:view', 'playbook', 'view'),
    ('playbook:edit', 'playbook', 'edit'),
    ('playbook:delete', 'playbook', 'delete')
ON CONFLICT (permission_name) DO NOTHING;

INSERT INTO auth.role_permissions (role_id, permission_id)
SELECT r.role_id, p.permission_id
FROM auth.roles r JOIN auth.permissions p ON
    r.role_name = 'admin'
    OR (r.role_name = 'developer' AND p.action IN ('execute', 'view', 'edit'))
    OR (r.role_name = 'analyst' AND p.action IN ('execute', 'view'))
    OR (r.role_name = 'viewer' AND p.action = 'view')
ON CONFLICT DO NOTHING;

INSERT INTO auth.playbook_permissions
    (role_id, playbook_path, allow_pattern, deny_pattern, can_execute, can_view, can_edit, can_delete)
SELECT r.role_id, '%', v.allow_pattern, v.deny_pattern, v.x, v.vw, v.ed, v.del
FROM (VALUES
    ('admin', '*', NULL, TRUE, TRUE, TRUE, TRUE),
    ('developer', '*', 'system/*', TRUE, TRUE, TRUE, FALSE),
    ('analyst', 'data/*', NULL, TRUE, TRUE, FALSE, FALSE),
    ('viewer', '*', NULL, FALSE, TRUE, FALSE, FALSE)
) AS v (role_name, allow_pattern, deny_pattern, x, vw, ed, del)
JOIN auth.roles r ON r.role_name = v.role_name;
