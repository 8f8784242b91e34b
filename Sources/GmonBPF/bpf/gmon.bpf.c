// gmon's kernel side: two uprobes on the Go runtime report goroutine creation
// and exit, a raw tracepoint reports the exit of traced processes. Events go
// to user space through one ring buffer; what cannot be sent is counted.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "gmon_events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// x86-64 user registers as the uprobe context lays them out (struct pt_regs).
struct gmon_pt_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

const volatile struct gmon_config gmon_cfg = {};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);
} gmon_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, GMON_COUNTER_MAX);
    __type(key, __u32);
    __type(value, __u64);
} gmon_counters SEC(".maps");

// Processes that produced events, so their exit can be reported.
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 8192);
    __type(key, __u32);
    __type(value, __u8);
} gmon_tgids SEC(".maps");

// Scratch space for a creation event with its stack (too big for the BPF stack).
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct gmon_create_event);
} gmon_scratch SEC(".maps");

// Waking the reader for every event costs more than the event itself: wake it
// only once this much is waiting (gmon also drains the ring every 20 ms).
#define GMON_WAKEUP_BYTES (1 << 20)

static __always_inline __u64 wakeup_flag(void) {
    return bpf_ringbuf_query(&gmon_events, BPF_RB_AVAIL_DATA) >= GMON_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void count(__u32 idx) {
    __u64 *v = bpf_map_lookup_elem(&gmon_counters, &idx);
    if (v)
        *v += 1;
}

static __always_inline void remember_tgid(__u32 tgid) {
    if (bpf_map_lookup_elem(&gmon_tgids, &tgid))
        return;
    __u8 one = 1;
    if (bpf_map_update_elem(&gmon_tgids, &tgid, &one, BPF_NOEXIST) == -7 /* E2BIG: map full */)
        count(GMON_TGID_MAP_FULL);
}

static __always_inline void fill_header(struct gmon_event_header *h, __u32 type, __u64 pid_tgid, __u64 goid) {
    h->type = type;
    h->tgid = pid_tgid >> 32;
    h->tid = (__u32)pid_tgid;
    h->_pad = 0;
    h->ktime_ns = bpf_ktime_get_ns();
    h->goid = goid;
}

static __always_inline int read_u64(__u64 *dst, __u64 g, __u64 off) {
    if (bpf_probe_read_user(dst, sizeof(*dst), (void *)(g + off)) != 0) {
        count(GMON_FAILED_READ);
        *dst = 0;
        return -1;
    }
    return 0;
}

// The creator's stack by Go's frame pointers: the probe's IP, then each frame's return
// address. bpf_get_stack walks the same chain but reads one frame past its end (the
// outermost frame pointer is 0), and that fault costs the watched thread ~0.6 µs per
// creation (measured with perf); stopping at 0 costs nothing.
struct gmon_frame { __u64 next; __u64 ret; };

static __always_inline __u32 walk_frames(struct gmon_pt_regs *ctx, __u64 *stack) {
    stack[0] = ctx->ip;
    __u32 n = 1;
    __u64 fp = ctx->bp;
    struct gmon_frame f;
    for (int i = 1; i < GMON_MAX_STACK; i++) {
        if (fp == 0)
            break;
        if (bpf_probe_read_user(&f, sizeof(f), (void *)fp) != 0) {
            count(GMON_FAILED_STACK);   // a broken chain: the stack so far is sent
            break;
        }
        stack[i] = f.ret;
        n = i + 1;
        fp = f.next;
    }
    return n;
}

static __always_inline int on_create(struct gmon_pt_regs *ctx, __u64 g) {
    __u32 zero = 0;
    struct gmon_create_event *e = bpf_map_lookup_elem(&gmon_scratch, &zero);
    if (!e)
        return 0;
    fill_header(&e->h, GMON_EVENT_CREATE, bpf_get_current_pid_tgid(), 0);
    read_u64(&e->h.goid, g, gmon_cfg.goid_offset);
    read_u64(&e->startpc, g, gmon_cfg.startpc_offset);
    read_u64(&e->gopc, g, gmon_cfg.gopc_offset);
    e->parent_goid = 0;
    if (gmon_cfg.parent_goid_offset)
        read_u64(&e->parent_goid, g, gmon_cfg.parent_goid_offset);
    e->cgroup_id = bpf_get_current_cgroup_id();
    e->probe_ip = ctx->ip;
    e->stack_len = 0;
    e->_pad2 = 0;
    if (gmon_cfg.collect_stack)
        e->stack_len = walk_frames(ctx, e->stack);
    __u64 size = sizeof(*e) - sizeof(e->stack) + (__u64)(e->stack_len & (GMON_MAX_STACK * 2 - 1)) * 8;
    if (size > sizeof(*e))
        size = sizeof(*e);
    if (bpf_ringbuf_output(&gmon_events, e, size, wakeup_flag()) != 0)
        count(GMON_LOST_CREATE_RINGBUF);
    remember_tgid(e->h.tgid);
    return 0;
}

// At CALL runtime.runqput in runtime.newproc.func1 the new g is the second argument (RBX).
SEC("uprobe")
int gmon_create_rbx(struct gmon_pt_regs *ctx) { return on_create(ctx, ctx->bx); }

// Fallback: uretprobe on runtime.newproc1, which returns the new g in RAX.
SEC("uprobe")
int gmon_create_rax(struct gmon_pt_regs *ctx) { return on_create(ctx, ctx->ax); }

SEC("uprobe")
int gmon_exit(struct gmon_pt_regs *ctx) {
    struct gmon_exit_event *e = bpf_ringbuf_reserve(&gmon_events, sizeof(*e), 0);
    if (!e) {
        count(GMON_LOST_EXIT_RINGBUF);
        return 0;
    }
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    fill_header(&e->h, GMON_EVENT_EXIT, pid_tgid, 0);
    read_u64(&e->h.goid, ctx->r14, gmon_cfg.goid_offset);
    bpf_ringbuf_submit(e, wakeup_flag());
    remember_tgid(pid_tgid >> 32);
    return 0;
}

// Go never lets its main thread exit on its own, so the thread-group leader's
// exit is the process's exit.
SEC("raw_tp/sched_process_exit")
int gmon_process_exit(void *ctx) {
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = pid_tgid >> 32;
    if ((__u32)pid_tgid != tgid || !bpf_map_lookup_elem(&gmon_tgids, &tgid))
        return 0;
    bpf_map_delete_elem(&gmon_tgids, &tgid);
    struct gmon_exit_event *e = bpf_ringbuf_reserve(&gmon_events, sizeof(*e), 0);
    if (!e) {
        count(GMON_LOST_PROC_RINGBUF);
        return 0;
    }
    fill_header(&e->h, GMON_EVENT_PROCESS_EXIT, pid_tgid, 0);
    bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
    return 0;
}

// Delivery floor, for `make bench`: an empty record through the ring buffer per probe
// hit, which gmon counts and drops: the least any tool pays that hands each event to
// user space. The record's contents are not read.
SEC("uprobe")
int gmon_deliver(void *ctx) {
    struct gmon_event_header *e = bpf_ringbuf_reserve(&gmon_events, sizeof(*e), 0);
    if (!e) {
        count(GMON_LOST_EXIT_RINGBUF);
        return 0;
    }
    e->type = 0;
    bpf_ringbuf_submit(e, wakeup_flag());
    return 0;
}

// Count-only programs: the floor cost of a uprobe at a site, for `make bench`.
SEC("uprobe")
int gmon_count_create(void *ctx) { count(GMON_COUNT_ONLY_CREATE); return 0; }

SEC("uprobe")
int gmon_count_exit(void *ctx) { count(GMON_COUNT_ONLY_EXIT); return 0; }
