-- Production roles for the portal on PostgreSQL.
--
-- portal_owner owns the schema and runs the migrations (`flask db upgrade`).
-- portal_app is what gunicorn connects as: it can read and write the application's
-- tables but has no UPDATE, DELETE or TRUNCATE on the audit tables, so even a bug or an
-- injection in the application cannot rewrite history. The migration's triggers refuse
-- those statements as well, for every role but a superuser who disables them.
--
-- Run as a superuser after the first `flask db upgrade`, and again after each migration
-- that adds tables (the GRANTs are idempotent):
--   psql -v ON_ERROR_STOP=1 -d portal -f deploy/postgres-roles.sql

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'portal_app') THEN
        CREATE ROLE portal_app LOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO portal_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO portal_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO portal_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_checkpoints FROM portal_app;
REVOKE ALL ON alembic_version FROM portal_app;
GRANT SELECT ON alembic_version TO portal_app;
