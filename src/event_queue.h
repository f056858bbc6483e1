/*
 * event_queue.h
 *		The triggers that queue new events and check the endpoints they list.
 */
#ifndef INTEGRATION_EVENT_QUEUE_H
#define INTEGRATION_EVENT_QUEUE_H

#include "fmgr.h"

/* AFTER INSERT ... FOR EACH STATEMENT on webhook_events, transition table "added". */
extern PGDLLEXPORT Datum integration_queue_events(PG_FUNCTION_ARGS);

#endif
