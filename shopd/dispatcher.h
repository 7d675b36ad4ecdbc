/* dispatcher: the shopd child that delivers pending orders (the outbox rows of
 * the orders table) to DynamoDB. */
#ifndef SHOPD_DISPATCHER_H
#define SHOPD_DISPATCHER_H

#include "shopd/settings.h"

/* Runs the dispatcher loop until SIGTERM; wake_fd is an eventfd that workers
 * write after each checkout. Returns the process exit code. */
int dispatcher_run(const struct shopd_settings *settings, int wake_fd);

#endif
