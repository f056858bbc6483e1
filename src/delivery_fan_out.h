/*
 * delivery_fan_out.h
 *		Published events fanned out into deliveries, claimed at once where their
 *		endpoint has room.
 */
#ifndef INTEGRATION_DELIVERY_FAN_OUT_H
#define INTEGRATION_DELIVERY_FAN_OUT_H

#include "delivery_store.h"

/* Endpoints short of room that a fan-out names (FanOutLanes.short_of_room). */
#define FANOUT_SHORT_MAX 4

/* The two lanes of one fan-out (StoreFanOutAndClaim()). */
typedef struct FanOutLanes
{
	int64		after;			/* in/out: the backlog lane takes events above
								 * this */
	int			limit;			/* its batch; 0: it takes none */
	int64		fresh_after;	/* in/out: the fresh lane takes events above
								 * this */
	int			fresh_limit;	/* its batch; 0: no fresh lane */
	int			taken;			/* out: events the backlog lane took */
	int			fresh_taken;	/* out: events the fresh lane took */
	bool		put_back;		/* out: events were queued again (an endpoint
								 * was locked) */
	bool		overflowed;		/* out: deliveries went in pending, for want
								 * of room */
	/* out: the endpoints left with room for less than a batch, if few */
	EndpointSettingsKey short_of_room[FANOUT_SHORT_MAX];
	int			nshort;
	bool		short_more;		/* out: more than FANOUT_SHORT_MAX */
} FanOutLanes;

/* How many more claims the worker takes for an endpoint (asked once per batch). */
typedef int (*FanOutRoom) (void *arg, const EndpointSettings *endpoint);

extern int	StoreFanOutAndClaim(int lease_ms, FanOutLanes *lanes, FanOutRoom room,
								void *room_arg, ClaimList *list);
extern int64 StoreNewestQueued(void);
extern void FanOutForgetPlans(int tables);

#endif
