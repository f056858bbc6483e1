/*
 * integration.c
 *		Module entry point: wires up each subsystem when the library loads.
 *
 * The library is meant for shared_preload_libraries: the delivery worker and the
 * commit-time wake-up need shared memory, which only exists when the library is loaded
 * by the postmaster.  Loaded later (by a plain backend), it defines its settings so
 * that SQL functions work, and the install script refuses CREATE EXTENSION with a hint.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "integration.h"
#include "shared_state.h"
#include "tenant.h"
#include "validate.h"
#include "retry_policy.h"
#include "worker.h"

PG_MODULE_MAGIC;

bool		integration_loaded_at_preload = false;

void		_PG_init(void);

void
_PG_init(void)
{
	integration_loaded_at_preload = process_shared_preload_libraries_in_progress;

	tenant_define_gucs();
	validate_define_gucs();
	retry_policy_define_gucs();
	worker_define_gucs();

	/* Shared memory and the worker exist only when the postmaster loads the library. */
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
	{
		shared_state_request();
		worker_register_launcher();
		worker_install_hooks();
	}

	MarkGUCPrefixReserved("integration");
}

PG_FUNCTION_INFO_V1(integration_is_preloaded);

/* Tells the install script whether the library came from shared_preload_libraries. */
Datum
integration_is_preloaded(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(integration_loaded_at_preload || IsBinaryUpgrade);
}
