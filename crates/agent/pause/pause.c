/*
 * The pod sandbox's first process: it holds the pod's namespaces open and does nothing else.
 * As PID 1 of a pod that shares its process namespace it also reaps orphans, and it leaves
 * at once on SIGTERM or SIGINT (the runtime's stop). Built statically by build.rs so that
 * the pause image needs no libc.
 */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>

static void leave(int sig) {
    (void)sig;
    _exit(0);
}

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction action = {0};
    sigemptyset(&action.sa_mask);
    action.sa_handler = leave;
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) {
        return 1;
    }
    action.sa_handler = reap;
    action.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    if (sigaction(SIGCHLD, &action, NULL) != 0) {
        return 1;
    }
    for (;;) {
        pause();
    }
}
