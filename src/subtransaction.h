/*
 * subtransaction.h
 *		One piece of work run in a subtransaction of its own, its error caught.
 */
#ifndef INTEGRATION_SUBTRANSACTION_H
#define INTEGRATION_SUBTRANSACTION_H

typedef void (*SubtransactionFn) (void *arg);

extern bool RunInSubtransaction(SubtransactionFn fn, void *arg, MemoryContext errcxt,
								ErrorData **error);

#endif
