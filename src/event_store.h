/*
 * event_store.h
 *		Writes published events into integration.webhook_events.
 */
#ifndef INTEGRATION_EVENT_STORE_H
#define INTEGRATION_EVENT_STORE_H

/* One event to write: its tenant and name (text), endpoint ids (int8[]) and payload (text). */
typedef struct EventRow
{
	Datum		tenant;
	Datum		event;
	Datum		endpoint_ids;
	Datum		payload;
} EventRow;

extern void InsertEvents(EventRow *rows, int nrows);

#endif
