#ifndef PSM_SIGNALS_H
#define PSM_SIGNALS_H
/* Turns SIGBUS and SIGSEGV into a short report and exit status 65 (bad data). LMDB has no page
 * checksums, so a damaged data.mdb (a flipped bit in a page pointer) can make a read fault instead of
 * returning an error; this names the likely cause instead of dumping a crash. The message is copied
 * at install time; the handler only calls write(2) and _exit(2) (async-signal-safe). */
void psm_install_fatal_signal_report(const char *message);
#endif
