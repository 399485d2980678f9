/* System calls that Glibc declares only under _GNU_SOURCE, which Swift's Glibc module leaves off. */
#ifndef SFTS_SYSTEM_SHIM_H
#define SFTS_SYSTEM_SHIM_H

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* renameat2(2) with RENAME_NOREPLACE: fails with EEXIST instead of replacing the target. */
static inline int sfts_renameat_noreplace(int olddirfd, const char *oldpath, int newdirfd,
                                          const char *newpath) {
    return (int)syscall(SYS_renameat2, olddirfd, oldpath, newdirfd, newpath, 1u);
}

#endif
