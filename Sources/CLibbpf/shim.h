#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <stdarg.h>
// glibc's, declared only under _GNU_SOURCE: gmon formats libbpf's messages with it.
int vasprintf(char **strp, const char *fmt, va_list ap);
