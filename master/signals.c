/*
 * signals.c - the master's signal handlers: a flag and a byte, nothing more.
 *
 * Handlers set a flag and write one byte to a non-blocking self-pipe whose read
 * end is in the main loop's epoll set, so the loop wakes at once and does the real work
 * (reap, reload, reopen the delivery log, stop) outside signal context.  SA_RESTART is not
 * used: a signal interrupts the wait, which is what we want.
 * The loop empties the pipe once per pass, before it takes any flag (sl_signals_woken): a byte
 * then always stands for a flag not yet taken.  Emptied by each take instead, the pipe lost the
 * byte of a signal raised between two takes of the same pass, and a flag left raised without
 * its byte waited for the next wake, which in the drain can be minutes away.
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

/* sl_signals_woken - empty the pipe: the loop woke, and takes the flags next */
void sl_signals_woken(void)
{
    char buf[64];

    while (read(self_pipe[0], buf, sizeof buf) > 0)
        ;
}

/* sl_signals_pending - is a flag raised and not yet taken? */
bool sl_signals_pending(void)
{
    for (int s = 0; s < SL_SIG__COUNT; s++)
        if (raised[s])
            return true;
    return false;
}

/* sl_signals_take - consume a raised flag */
bool sl_signals_take(enum sl_sig s)
{
    if (!raised[s])
        return false;
    raised[s] = 0;
    return true;
}
