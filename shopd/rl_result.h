/* rl_result: what a budget check answered, shared by the ratelimitd client and the
 * worker's leases of budget tokens (a type only, so that neither depends on the other). */
#ifndef SHOPD_RL_RESULT_H
#define SHOPD_RL_RESULT_H

struct rl_result {
    enum rl_verdict { RL_ALLOW, RL_DENY, RL_UNAVAILABLE } verdict;
    long limit;          /* burst capacity of the rule */
    long remaining;      /* whole tokens left (0 on a DENY) */
    long reset_seconds;  /* until the bucket is full again (ALLOW) or the request may be retried (DENY) */
    long retry_after_ms; /* DENY only: when a retry would succeed */
    long window_seconds; /* the rule's refill window; 0 when ratelimitd did not say */
    long granted;        /* tokens granted (a lease's answer may grant several); 0 on a DENY */
};

#endif
