/*
 * worker.h
 *		The delivery worker: launcher, per-database worker and their settings.
 */
#ifndef INTEGRATION_WORKER_H
#define INTEGRATION_WORKER_H

extern void worker_define_gucs(void);
extern void worker_register_launcher(void);
extern void worker_install_hooks(void);

#endif
