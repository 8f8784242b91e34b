// Test helper: runs a command with the bpf() system call denied by a seccomp filter,
// to show how gmon reports a kernel without BPF features.
//   deny-bpf nosys CMD…   every bpf() fails with ENOSYS (a kernel without BPF)
//   deny-bpf eperm CMD…   every bpf() fails with EPERM (lockdown, container policy)
//   deny-bpf nomaps CMD…  BPF_MAP_CREATE fails with EINVAL, as for an unknown map type
//   deny-bpf noprogs CMD… BPF_PROG_LOAD fails with EINVAL, as for an unknown program type
#include <errno.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: deny-bpf nosys|eperm|nomaps|noprogs CMD...\n"); return 2; }
    unsigned ret;
    int onlyCmd = -1;   // deny every bpf() command, or only this one
    if (!strcmp(argv[1], "nosys")) ret = SECCOMP_RET_ERRNO | ENOSYS;
    else if (!strcmp(argv[1], "eperm")) ret = SECCOMP_RET_ERRNO | EPERM;
    else if (!strcmp(argv[1], "nomaps")) { ret = SECCOMP_RET_ERRNO | EINVAL; onlyCmd = BPF_MAP_CREATE; }
    else if (!strcmp(argv[1], "noprogs")) { ret = SECCOMP_RET_ERRNO | EINVAL; onlyCmd = BPF_PROG_LOAD; }
    else { fprintf(stderr, "deny-bpf: unknown mode %s\n", argv[1]); return 2; }
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_bpf, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, onlyCmd < 0 ? 0 : (unsigned)onlyCmd, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, onlyCmd < 0 ? ret : SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, ret),
    };
    struct sock_fprog prog = { .len = sizeof filter / sizeof filter[0], .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
        perror("deny-bpf: seccomp"); return 2;
    }
    execvp(argv[2], argv + 2);
    perror("deny-bpf: exec"); return 127;
}
