/*
 * sending_counts.h
 *		How many of a tenant's deliveries may be 'sending': the delivery worker's counts
 *		in shared memory, read by list_deliveries(status => 'sending').
 */
#ifndef INTEGRATION_SENDING_COUNTS_H
#define INTEGRATION_SENDING_COUNTS_H

#include "datatype/timestamp.h"

/* In the delivery worker, around each store transaction. */
extern void SendingCountsClaimed(const char *tenant_id);
extern void SendingCountsEnded(const char *tenant_id);
extern void SendingCountsCommitted(TransactionId xid);
extern void SendingCountsRolledBack(void);
extern void SendingCountsStartup(void);
extern bool SendingCountsWritersOpen(TimestampTz now);
extern void SendingCountsAdopt(void);
extern void SendingCountsUsableFrom(TransactionId xid);
extern void SendingCountsKeepSince(TimestampTz now);
extern void SendingCountsRelease(TimestampTz now);
extern TimestampTz SendingCountsNextRelease(void);

/* Claims made outside the worker (integration._claim_due(), _fan_out()). */
extern void SendingCountsClaimedElsewhere(const char *tenant_id, int n);

#endif
