/* tests/support/harness: what a test leaves behind is cleaned up when its process
 * ends, also when the test ended early (a failure or cr_skip_test skips its suite's
 * .fini), and a forked child that exits never cleans up its parent's things. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/harness.h"

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A test process that ends without its teardown: a child makes a folder and starts
 * a process, writes both down for the parent, and exits. */
Test(harness, a_process_that_exits_leaves_no_folder_and_no_process)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        close(fds[0]);
        char *dir = harness_tempdir("harness-leftover");
        const char *argv[] = {"/bin/sleep", "60", NULL};
        struct harness_proc *p = harness_start(argv, NULL, dir, NULL);
        char line[512];
        int n = snprintf(line, sizeof(line), "%d %s\n", (int)harness_pid(p), dir);
        if (write(fds[1], line, (size_t)n) != n)
            _exit(2);
        exit(0); /* as a test's process does when the test is over */
    }
    close(fds[1]);
    char line[512] = {0};
    ssize_t n = read(fds[0], line, sizeof(line) - 1);
    close(fds[0]);
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(n > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed: %s", line);
    int pid;
    char dir[400];
    cr_assert_eq(sscanf(line, "%d %399s", &pid, dir), 2, "%s", line);
    cr_expect_not(exists(dir), "%s is still there", dir);
    cr_expect(kill(pid, 0) < 0, "process %d still runs", pid);
    if (exists(dir))
        harness_rmrf(dir);
}

Test(harness, a_forked_child_that_exits_keeps_its_parents_folder)
{
    char *dir = harness_tempdir("harness-parent");
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0)
        exit(0); /* inherits the parent's exit handler and lists */
    int status;
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_expect(exists(dir), "the child's exit removed its parent's %s", dir);
    harness_rmrf(dir);
    cr_expect_not(exists(dir));
    free(dir);
}
