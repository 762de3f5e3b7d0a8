/*
 * signals.c - the master's signal handlers: a flag and a byte, nothing more.
 *
 * Handlers set a flag and write one byte to a non-blocking self-pipe whose read
 * end the main loop polls, so the loop wakes at once and does the real work
 * (reap, reload, reopen the delivery log, stop) outside signal context.  SA_RESTART is not used: a
 * signal interrupts the poll, which is what we want.
 * Global state: the flags and the pipe, below; set here, read by sl_signals_take.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "master/sl_signals.h"
#include "util/sl_msg.h"

static volatile sig_atomic_t raised[SL_SIG__COUNT];
static int self_pipe[2] = {-1, -1};

/* on_signal - note the signal and wake the main loop */
static void on_signal(int signo)
{
    int saved = errno;
    char b = 0;

    switch (signo) {
    case SIGCHLD:
        raised[SL_SIG_CHILD] = 1;
        break;
    case SIGHUP:
        raised[SL_SIG_RELOAD] = 1;
        break;
    case SIGUSR1:
        raised[SL_SIG_REOPEN] = 1;
        break;
    default:
        raised[SL_SIG_STOP] = 1;
        break;
    }
    if (write(self_pipe[1], &b, 1) < 0) {
        /* The pipe is full: the loop is already due to wake. */
    }
    errno = saved;
}

/* sl_signals_install - route SIGCHLD, SIGHUP, SIGUSR1, SIGTERM, SIGINT to the loop */
int sl_signals_install(void)
{
    struct sigaction sa;
    static const int sigs[] = {SIGCHLD, SIGHUP, SIGUSR1, SIGTERM, SIGINT};

    if (pipe2(self_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        sl_msg_fatal("cannot create the signal pipe: %s", strerror(errno));
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) < 0)
            sl_msg_fatal("sigaction(%d): %s", sigs[i], strerror(errno));
    signal(SIGPIPE, SIG_IGN);
    return self_pipe[0];
}

/* sl_signals_take - consume a raised flag; drain the pipe when it was the last */
bool sl_signals_take(enum sl_sig s)
{
    char buf[64];

    if (!raised[s])
        return false;
    raised[s] = 0;
    while (read(self_pipe[0], buf, sizeof buf) > 0)
        ;
    return true;
}
