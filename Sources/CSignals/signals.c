#include "psm_signals.h"
#include <signal.h>
#include <string.h>
#include <unistd.h>

static char report[1024];
static size_t report_length;

static void on_fatal(int sig) {
    (void)sig;
    ssize_t unused = write(2, report, report_length);
    (void)unused;
    _exit(65);
}

void psm_install_fatal_signal_report(const char *message) {
    report_length = strlen(message);
    if (report_length >= sizeof report) report_length = sizeof report - 1;
    memcpy(report, message, report_length);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fatal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
}
