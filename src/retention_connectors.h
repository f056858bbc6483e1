/*
 * retention_connectors.h
 *		The connector tables' part of a retention pass (retention_connectors.c):
 *		inbound events, connector calls and deleted connectors' synced records,
 *		walked a window at a time by the pass and the schedule of retention.c.
 */
#ifndef INTEGRATION_RETENTION_CONNECTORS_H
#define INTEGRATION_RETENTION_CONNECTORS_H

#include "datatype/timestamp.h"

/* Rows finished before these expire; DT_NOBEGIN: none (the period is forever). */
typedef struct RetentionCutoffs
{
	TimestampTz now;			/* the transaction's start: the cutoffs'
								 * origin */
	TimestampTz delivered;
	TimestampTz failed;
	TimestampTz logs;
	TimestampTz events;			/* the later of delivered and failed */
} RetentionCutoffs;

/*
 * Where a walk of one table by its expiry index stands in a pass: it continues after
 * (after_at, after_id), and is done once a window came back short.
 */
typedef struct ExpiryWalk
{
	TimestampTz after_at;
	int64		after_id;
	bool		done;
} ExpiryWalk;

/*
 * The next window of at most limit rows of the walk, oldest first: deletes those of
 * them that expired, moves the walk past the window, and returns how many it
 * deleted; *looked is the window's size.  Must run with SPI connected.
 */
typedef int (*RetentionWindowFn) (ExpiryWalk *w, const RetentionCutoffs *c, int limit,
								  int *looked);

extern int	RetentionInboundWindow(ExpiryWalk *w, const RetentionCutoffs *c, int limit,
								   int *looked);
extern int	RetentionCallsWindow(ExpiryWalk *w, const RetentionCutoffs *c, int limit,
								 int *looked);

/*
 * The synced records of connectors deleted before the cutoff of retention_delivered,
 * a window of one connector's at a time (see retention_connectors.c).
 */
extern int	RetentionRecordsWindow(ExpiryWalk *w, const RetentionCutoffs *c, int limit,
								   int *looked);

/* After a failed transaction, or the extension dropped: plans are prepared again. */
extern void RetentionConnectorsForgetPlans(void);

#endif
