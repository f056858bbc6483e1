-- Runs first: installs the extension in the test database and creates the roles the
-- other files use.  Roles are cluster-wide, so they may already exist on a server
-- that is not pg_regress's own.
SET client_min_messages = warning;
CREATE EXTENSION integration;
RESET client_min_messages;

DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'integration_test_app') THEN
		CREATE ROLE integration_test_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'integration_test_admin') THEN
		CREATE ROLE integration_test_admin NOLOGIN NOSUPERUSER BYPASSRLS;
	END IF;
END
$$;

-- The grants docs/tenancy-and-security.md documents for an application role.
GRANT USAGE ON SCHEMA integration TO integration_test_app, integration_test_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA integration
	TO integration_test_app, integration_test_admin;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA integration
	TO integration_test_app, integration_test_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA integration
	TO integration_test_app, integration_test_admin;
-- Business tables of the test files live in public.
GRANT ALL ON SCHEMA public TO integration_test_app, integration_test_admin;

SELECT rolname, rolsuper, rolbypassrls, rolcanlogin
  FROM pg_roles WHERE rolname LIKE 'integration\_test\_%' ORDER BY rolname;

SELECT extname, extversion, extnamespace::regnamespace
  FROM pg_extension WHERE extname = 'integration';

-- Nothing is granted to PUBLIC.
SELECT p.oid::regprocedure AS function_executable_by_public
  FROM pg_proc p
 WHERE p.pronamespace = 'integration'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY 1;

-- Every object of the extension has a comment.
SELECT c.relname AS relation_without_comment
  FROM pg_class c
 WHERE c.relnamespace = 'integration'::regnamespace AND c.relkind IN ('r', 'v')
   AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.oid::regprocedure AS function_without_comment
  FROM pg_proc p
 WHERE p.pronamespace = 'integration'::regnamespace
   AND obj_description(p.oid, 'pg_proc') IS NULL;
