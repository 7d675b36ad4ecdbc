/* sigv4_front: starts tests/support/sigv4_front.py, a verifying front before the
 * local DynamoDB that recomputes every request's AWS Signature Version 4 with
 * botocore (independent of the signer under test) and refuses mismatches with
 * 400 InvalidSignatureException, as AWS does. */
#ifndef TESTS_SUPPORT_SIGV4_FRONT_H
#define TESTS_SUPPORT_SIGV4_FRONT_H

struct harness_proc;

/* Starts the front on 127.0.0.1:port forwarding to 127.0.0.1:upstream_port,
 * accepting the access keys of keys ("ID:SECRET", NULL-terminated); its one
 * line per request goes to log_path. Waits until it listens; aborts the test
 * when it does not start. */
struct harness_proc *sigv4_front_start(int port, int upstream_port, const char *const keys[],
                                       const char *log_path);
/* How many requests of log_path's front were verified, and refused. */
int sigv4_front_verified(const char *log_path);
int sigv4_front_refused(const char *log_path);

#endif
