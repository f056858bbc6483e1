/*
 * event_store.h
 *		Writes published events into integration.webhook_events.
 */
#ifndef INTEGRATION_EVENT_STORE_H
#define INTEGRATION_EVENT_STORE_H

extern void InsertEvents(const char *tenant, const char *event, Datum *endpoint_ids,
						 int nendpoints, Datum *payloads, int npayloads);

#endif
