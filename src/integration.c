/*
 * integration.c
 *		Module entry point: refuses the wrong load mode, then wires up each subsystem.
 *
 * The library works only from shared_preload_libraries: the delivery worker and the
 * commit-time wake-up need shared memory, which exists only when the postmaster loads
 * the library, and the worker's settings are PGC_POSTMASTER.  Loaded any other way (LOAD,
 * CREATE EXTENSION, or a call to one of its functions in a server started without the
 * preload), _PG_init raises an ERROR with a hint before it defines anything: defining a
 * PGC_POSTMASTER setting after startup would end the session with FATAL instead.  Under
 * pg_upgrade (IsBinaryUpgrade) it loads and does nothing, so the upgrade can check that
 * the library exists.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "circuit_breaker.h"
#include "connector.h"
#include "connector_request.h"
#include "endpoint_disable.h"
#include "inbound_job.h"
#include "integration.h"
#include "json_schema.h"
#include "network_policy.h"
#include "shared_state.h"
#include "tenant.h"
#include "validate.h"
#include "retention.h"
#include "retry_policy.h"
#include "secret_key.h"
#include "target_health.h"
#include "worker.h"

PG_MODULE_MAGIC;

bool		integration_loaded_at_preload = false;

void		_PG_init(void);

void
_PG_init(void)
{
	if (IsBinaryUpgrade)
		return;
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("integration must be loaded via shared_preload_libraries"),
				 errdetail("The delivery worker and the commit-time wake-up need shared memory, which exists only when the library is preloaded."),
				 errhint("Add integration to shared_preload_libraries in postgresql.conf and restart the server.")));
	integration_loaded_at_preload = true;

	TenantDefineGucs();
	ValidateDefineGucs();
	NetworkPolicyDefineGucs();
	RetryPolicyDefineGucs();
	JsonSchemaDefineGucs();
	WorkerDefineGucs();
	CircuitBreakerDefineGucs();
	TargetHealthDefineGucs();
	EndpointDisableDefineGucs();
	SecretKeyDefineGucs();
	RetentionDefineGucs();
	ConnectorDefineGucs();
	InboundJobDefineGucs();
	ConnectorRequestDefineGucs();

	/* In the postmaster, so that every backend inherits the keys. */
	SecretKeyLoad();

	SharedStateRequest();
	WorkerRegisterLauncher();
	WorkerInstallHooks();

	MarkGUCPrefixReserved("integration");
}

PG_FUNCTION_INFO_V1(integration_is_preloaded);

/*
 * Kept for the install script's check.  A library that is not preloaded never gets this
 * far (_PG_init refuses it), so this answers true, or false under pg_upgrade.
 */
Datum
integration_is_preloaded(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(integration_loaded_at_preload || IsBinaryUpgrade);
}
