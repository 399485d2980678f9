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

/* O_DIRECT, which Glibc defines only under _GNU_SOURCE; writes then bypass the page cache. */
static const int sfts_O_DIRECT = __O_DIRECT;

/* O_PATH, also _GNU_SOURCE only: a descriptor that names a folder for the *at calls without
   needing read permission on it. */
static const int sfts_O_PATH = __O_PATH;

/* The alignment of buffers, offsets and sizes that O_DIRECT writes need on common file systems. */
static const int sfts_direct_alignment = 4096;

/* sync_file_range(2) with SYNC_FILE_RANGE_WRITE: starts writeback of a range without waiting,
   so the fsync at the end of a large write has less left to flush. */
static inline int sfts_start_writeback(int fd, long long offset, long long length) {
    return (int)syscall(SYS_sync_file_range, fd, offset, length, 2u);
}

#endif
