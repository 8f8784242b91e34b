#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <stdarg.h>
#include <sys/epoll.h>
// glibc's, declared only under _GNU_SOURCE: gmon formats libbpf's messages with it.
int vasprintf(char **strp, const char *fmt, va_list ap);
// The ring buffer's positions and record headers are shared with the kernel's
// producers: read with acquire, publish with release (as libbpf's reader does).
static inline unsigned long long gmon_load_acquire_u64(const unsigned long long *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline unsigned int gmon_load_acquire_u32(const unsigned int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void gmon_store_release_u64(unsigned long long *p, unsigned long long v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
