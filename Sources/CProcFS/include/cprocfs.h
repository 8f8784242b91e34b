// process_vm_readv: many ranges of another process's memory in one system call (a snapshot
// reads the top of every goroutine's stack). glibc declares it only under _GNU_SOURCE, which
// clashes with Swift's Glibc module, so it is declared here on its own, with an iovec of the
// same layout as struct iovec.
#ifndef GMON_CPROCFS_H
#define GMON_CPROCFS_H

struct gmon_iovec {
    void *base;
    unsigned long length;
};

long process_vm_readv(int pid, const struct gmon_iovec *local, unsigned long local_count,
                      const struct gmon_iovec *remote, unsigned long remote_count, unsigned long flags);

// fstatfs (sys/vfs.h is not in Swift's Glibc module): tells an overlayfs file (a container's root).
#include <sys/vfs.h>
// malloc_trim (malloc.h is not in Swift's Glibc module either): freed memory back to the system.
#include <malloc.h>

#endif
