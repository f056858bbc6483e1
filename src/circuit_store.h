/*
 * circuit_store.h
 *		Circuits that survive a restart: the worker's circuit transitions stored in
 *		integration.target_circuits and logged to integration_logs, and read back
 *		when a worker starts.
 */
#ifndef INTEGRATION_CIRCUIT_STORE_H
#define INTEGRATION_CIRCUIT_STORE_H

#include "scheduler.h"

/* Receives each stored circuit that is not closed (CircuitStoreLoad()). */
typedef void (*CircuitRestoreFn) (const char *tenant_id, int64 id, const CircuitBreaker *cb,
								  void *arg);

extern void CircuitStoreWrite(const SchedTransition *transitions, int n);
extern uint64 CircuitStoreTransitions(Scheduler *s, const JobKind *kind, int *failures);
extern int	CircuitStoreLoad(const char *kind, CircuitRestoreFn restore, void *arg);

#endif
