/*
 * wakeup.h
 *		Commit-time wake-up of the delivery worker and endpoint-cache invalidation.
 */
#ifndef INTEGRATION_WAKEUP_H
#define INTEGRATION_WAKEUP_H

extern void wake_worker_at_commit(void);
extern void wake_worker_for_due_at_commit(void);
extern void endpoints_changed_in_xact(void);
extern bool endpoints_changed_in_this_xact(void);

#endif
