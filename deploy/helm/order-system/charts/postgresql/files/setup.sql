-- Roles and schemas of order-system. Run as a superuser connected to the order_system
-- database; safe to run again. Each service logs in with its own role, which owns only its
-- schema, so no service can read or write another's data.
-- The passwords equal the role names: fine for a developer machine, replace them elsewhere
-- (the helm chart and docker-compose pass their own).
DO $$
DECLARE
    svc record;
BEGIN
    FOR svc IN SELECT * FROM (VALUES
        ('user_service', 'users'),
        ('billing_service', 'billing'),
        ('order_service', 'orders'),
        ('notification_service', 'notifications')) AS s(role, schema)
    LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = svc.role) THEN
            EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L', svc.role, svc.role);
        END IF;
        EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', svc.schema, svc.role);
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', svc.schema, svc.role);
        EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', svc.schema);
        EXECUTE format('ALTER ROLE %I SET search_path = %I', svc.role, svc.schema);
    END LOOP;
END $$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
