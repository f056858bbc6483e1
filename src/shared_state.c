/*
 * shared_state.c
 *		Allocation of the extension's shared memory (PG 15 request/startup hooks).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"

#include "shared_state.h"

IntegrationSharedState *integration_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
integration_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(IntegrationSharedState)));
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
		SpinLockInit(&integration_shared->slots_mutex);
		for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
			SpinLockInit(&integration_shared->workers[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Called from _PG_init while shared_preload_libraries are processed. */
void
shared_state_request(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = integration_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = integration_shmem_startup;
}

/*
 * Sets the latch of the delivery worker of database dboid, if one runs.  Latches are
 * idempotent, so many commits in a burst share one wake-up of the worker.  due: the
 * commit also made deliveries due (a requeue, a dispatch), so the worker looks for
 * them; a wake-up for published events alone only fans out.
 */
void
wake_database_worker(Oid dboid, bool due)
{
	if (integration_shared == NULL)
		return;
	pg_atomic_fetch_add_u64(&integration_shared->commits_signalled, 1);
	for (int i = 0; i < INTEGRATION_MAX_WORKERS; i++)
	{
		IntegrationWorkerSlot *slot = &integration_shared->workers[i];
		Latch	   *latch = NULL;

		SpinLockAcquire(&slot->mutex);
		if (slot->in_use && slot->dboid == dboid)
		{
			latch = slot->latch;
			if (due)
				slot->due_requested = true;
		}
		SpinLockRelease(&slot->mutex);
		if (latch != NULL)
		{
			SetLatch(latch);
			pg_atomic_fetch_add_u64(&integration_shared->workers_woken, 1);
		}
	}
}
