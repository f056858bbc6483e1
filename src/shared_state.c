/*
 * shared_state.c
 *		Allocation of the extension's shared memory (PG 15 request/startup hooks): the
 *		state of shared_state.h and the targets' live figures (target_health.c).
 */
#include "postgres.h"

#include "access/transam.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "shared_state.h"
#include "target_health.h"

IntegrationSharedState *integration_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
integration_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(IntegrationSharedState)));
	RequestNamedLWLockTranche("integration", 1);
	RequestAddinShmemSpace(MAXALIGN(TargetHealthShmemSize()));
	RequestNamedLWLockTranche("integration target health", 1);
}

static void
integration_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	integration_shared = ShmemInitStruct("integration", sizeof(IntegrationSharedState), &found);
	if (!found)
	{
		memset(integration_shared, 0, sizeof(IntegrationSharedState));
		pg_atomic_init_u64(&integration_shared->commits_signalled, 0);
		pg_atomic_init_u64(&integration_shared->workers_woken, 0);
		pg_atomic_init_u64(&integration_shared->endpoints_generation, 1);
		pg_atomic_init_u64(&integration_shared->endpoints_truncated, 1);
		for (int i = 0; i < ENDPOINT_GENERATION_SLOTS; i++)
			pg_atomic_init_u64(&integration_shared->tenant_endpoints_generation[i], 1);
		integration_shared->slots_lock = &(GetNamedLWLockTranche("integration"))->lock;
		ConditionVariableInit(&integration_shared->slot_released);
		for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
		{
			IntegrationWorkerSlot *slot = &integration_shared->workers[i];

			pg_atomic_init_u32(&slot->wake_requests, 0);
			pg_atomic_init_u32(&slot->activity, 0);
			pg_atomic_init_u32(&slot->in_flight, 0);
			pg_atomic_init_u64(&slot->sent, 0);
			pg_atomic_init_u64(&slot->delivered, 0);
			pg_atomic_init_u64(&slot->failed_attempts, 0);
			pg_atomic_init_u64(&slot->inbound_handled, 0);
			pg_atomic_init_u64(&slot->inbound_failed_attempts, 0);
			pg_atomic_init_u32(&slot->inbound_held, 0);
			pg_atomic_init_u64(&slot->calls_succeeded, 0);
			pg_atomic_init_u64(&slot->calls_failed_attempts, 0);
			pg_atomic_init_u32(&slot->calls_held, 0);
			pg_atomic_init_u64(&slot->sync_runs_started, 0);
			pg_atomic_init_u32(&slot->sending_since, InvalidTransactionId);
			for (int b = 0; b < SENDING_COUNT_BUCKETS; b++)
				pg_atomic_init_u64(&slot->sending[b], 0);
		}
	}
	TargetHealthShmemInit();
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init while shared_preload_libraries are processed. */
void
SharedStateRequest(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = integration_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = integration_shmem_startup;
}

/* The slot of tenant_id's endpoint-cache generation (tenant_endpoints_generation). */
int
EndpointGenerationSlot(const char *tenant_id)
{
	return (int) (hash_bytes((const unsigned char *) tenant_id, (int) strlen(tenant_id)) %
				  ENDPOINT_GENERATION_SLOTS);
}
