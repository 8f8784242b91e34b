// gmon's kernel side: two uprobes on the Go runtime report goroutine creation
// and exit, a raw tracepoint reports the exit of traced processes. Events go
// to user space through one ring buffer per CPU (gmon merges them by timestamp);
// what cannot be sent is counted.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "gmon_events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// x86-64 user registers as the uprobe context lays them out (struct pt_regs).
struct gmon_pt_regs {
    unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

const volatile struct gmon_settings gmon_settings = {};

// Per executable, by its number (each probe's attach cookie): where its runtime.g keeps
// the fields read. gmon writes an entry before attaching that executable's probes.
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, GMON_MAX_EXECUTABLES);
    __type(key, __u32);
    __type(value, struct gmon_exe_config);
} gmon_executables SEC(".maps");

// One ring per CPU: a shared ring's lock and positions are cache lines every CPU
// writes on every event (exits cost 170-430 ns with one ring, 130 with one per CPU,
// bpf_stats). gmon creates the rings (--ring-buffer-mb each) and fills this array.
struct gmon_ring {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 16);   // a template: the rings gmon creates have their own size
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 1);         // gmon sets it to the number of possible CPUs
    __type(key, __u32);
    __array(values, struct gmon_ring);
} gmon_rings SEC(".maps");

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

// Goroutines whose creation record was lost to a full ring, by process and g: their exits
// are flagged, so gmon tells them from exits of goroutines created before it attached.
// Entries go at the exit, at the g's next creation, or with the process.
struct gmon_gkey { __u32 tgid; __u32 _pad; __u64 g; };

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, struct gmon_gkey);
    __type(value, __u8);
} gmon_lost_creations SEC(".maps");

// Entries in gmon_lost_creations: while there are none (the normal case) the probes do not
// look there, which costs them one load.
__u64 gmon_lost_pending = 0;

// Scratch space for a creation event with its stack, and for the windows it is read
// through (too big for the BPF stack).
struct gmon_scratch {
    struct gmon_create_event e;
    __u64 g[GMON_G_WINDOW / 8];
    __u64 frames[GMON_STACK_WINDOW / 8];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, GMON_SCRATCH_SLOTS);
    __type(key, __u32);
    __type(value, struct gmon_scratch);
} gmon_scratch SEC(".maps");

// Per CPU: the last process it remembered in gmon_tgids and the number of process exits
// at the time (a hash lookup per event costs more than this check, and a pid reused
// after an exit does not match the newer exit count); and its event count, which spaces
// out the ring-buffer fill checks (wakeup_flag).
// `busy`: the scratch slots claimed by creation programs running on the CPU now (one bit each).
struct gmon_cpu_state { __u32 tgid; __u32 events; __u64 exits; __u32 busy; __u32 _pad; };

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct gmon_cpu_state);
} gmon_cpu_state SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} gmon_process_exits SEC(".maps");

// This CPU's state, looked up once per event for wakeup_flag and remember_tgid.
static __always_inline struct gmon_cpu_state *cpu_state(void) {
    __u32 zero = 0;
    return bpf_map_lookup_elem(&gmon_cpu_state, &zero);
}

// This CPU's ring (NULL only if gmon did not create it: then the event is counted lost).
static __always_inline void *cpu_ring(void) {
    __u32 cpu = bpf_get_smp_processor_id();
    return bpf_map_lookup_elem(&gmon_rings, &cpu);
}

// Waking the reader for every event costs more than the event itself: wake it only
// once a quarter of the CPU's ring is waiting (gmon also drains the rings every 20 ms).
// Even the check costs: it reads the consumer position, a cache line gmon's reader
// writes (~40 ns per creation, ~70 per exit, bpf_stats), so each CPU checks on one
// event in 64 (~10 KB of records, against a quarter ring of 256 KB by default).
static __always_inline __u64 wakeup_flag(void *ring, struct gmon_cpu_state *c) {
    if (c && (++c->events & 63) != 0)
        return BPF_RB_NO_WAKEUP;
    return bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= gmon_settings.wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void count(__u32 idx) {
    __u64 *v = bpf_map_lookup_elem(&gmon_counters, &idx);
    if (v)   // atomic: a program preempted between load and store would lose a count
        __sync_fetch_and_add(v, 1);
}

static __always_inline void remember_tgid(struct gmon_cpu_state *c, __u32 tgid) {
    __u32 zero = 0;
    __u64 *exits = bpf_map_lookup_elem(&gmon_process_exits, &zero);
    if (!c || !exits)
        return;
    __u64 now = *exits;
    if (c->tgid == tgid && c->exits == now)
        return;
    if (!bpf_map_lookup_elem(&gmon_tgids, &tgid)) {
        __u8 one = 1;
        if (bpf_map_update_elem(&gmon_tgids, &tgid, &one, BPF_NOEXIST) == -7 /* E2BIG: map full */) {
            count(GMON_TGID_MAP_FULL);
            return;
        }
    }
    c->tgid = tgid;
    c->exits = now;
}

static __always_inline void fill_header(struct gmon_event_header *h, __u32 type, __u64 pid_tgid, __u32 exe, __u64 goid) {
    h->type = type;
    h->tgid = pid_tgid >> 32;
    h->exe = exe;
    h->flags = 0;
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
// creation (measured with perf); stopping at 0 costs nothing. Frame records are read
// GMON_STACK_WINDOW bytes at a time: each read has a fixed cost larger than copying
// a few hundred bytes.
struct gmon_frame { __u64 next; __u64 ret; };

static __always_inline __u32 walk_frames(__u64 ip, __u64 fp, __u64 *stack, __u64 *win) {
    stack[0] = ip;
    __u32 n = 1;
    __u64 base = 0, end = 0;
    for (int i = 1; i < GMON_MAX_STACK; i++) {
        if (fp == 0 || (fp & 7))   // the outermost frame, or not a frame pointer
            break;
        if (fp < base || fp + 16 > end) {
            // A window may run past the end of the stack's mapping: then read to the end
            // of fp's page (at least the one record).
            __u64 len = GMON_STACK_WINDOW;
            if (bpf_probe_read_user(win, GMON_STACK_WINDOW, (void *)fp) != 0) {
                len = 4096 - (fp & 4095);
                if (len < 16)
                    len = 16;
                if (len > GMON_STACK_WINDOW)
                    len = GMON_STACK_WINDOW;
                if (bpf_probe_read_user(win, len, (void *)fp) != 0) {
                    count(GMON_FAILED_STACK);   // a broken chain: the stack so far is sent
                    break;
                }
            }
            base = fp;
            end = fp + len;
        }
        __u64 off = fp - base;
        if (off > GMON_STACK_WINDOW - 16)   // cannot happen (fp + 16 <= end); tells the verifier
            break;
        struct gmon_frame *f = (void *)win + off;
        stack[i] = f->ret;
        n = i + 1;
        fp = f->next;
    }
    return n;
}

static __always_inline __u64 g_field(const __u64 *w, __u32 at) {
    return w[(at / 8) & (GMON_G_WINDOW / 8 - 1)];
}

// A creation that could not be sent: counted, and its g remembered so its exit is flagged.
static __always_inline void creation_lost(__u32 counter, __u32 tgid, __u64 g) {
    count(counter);
    struct gmon_gkey key = { .tgid = tgid, ._pad = 0, .g = g };
    __u8 one = 1;
    if (bpf_map_update_elem(&gmon_lost_creations, &key, &one, BPF_NOEXIST) == 0)
        __sync_fetch_and_add(&gmon_lost_pending, 1);
    else if (!bpf_map_lookup_elem(&gmon_lost_creations, &key))
        count(GMON_LOST_CREATE_UNTRACKED);
}

static __always_inline int create_in(struct gmon_pt_regs *ctx, __u64 g, __u64 ip, __u64 bp, struct gmon_scratch *s,
                                     struct gmon_cpu_state *c);

static __always_inline int on_create(struct gmon_pt_regs *ctx, __u64 g) {
    // Registers are read first: the verifier refuses context reads through a pointer
    // clang has moved, which it does when these loads sink into the loop.
    __u64 ip = ctx->ip, bp = ctx->bp;
    asm volatile("" : "+r"(ip), "+r"(bp));
    struct gmon_cpu_state *c = cpu_state();
    if (!c)
        return 0;
    // Claim a scratch slot: the first whose bit this run sets (another run on this CPU,
    // preempted in the middle of its own, keeps its slot).
    __u32 slot = GMON_SCRATCH_SLOTS;
    for (__u32 i = 0; i < GMON_SCRATCH_SLOTS; i++) {
        if (gmon_settings.scratch_slots && i >= gmon_settings.scratch_slots)   // tests only (.rodata 0 in gmon)
            break;
        __u32 bit = 1u << i;
        if (!(__sync_fetch_and_or(&c->busy, bit) & bit)) {
            slot = i;
            break;
        }
    }
    if (slot >= GMON_SCRATCH_SLOTS) {
        creation_lost(GMON_LOST_CREATE_BUSY, bpf_get_current_pid_tgid() >> 32, g);
        return 0;
    }
    struct gmon_scratch *s = bpf_map_lookup_elem(&gmon_scratch, &slot);
    if (s)
        create_in(ctx, g, ip, bp, s, c);
    // Tests only (the preemption stress): the slot held longer. 0 in gmon, a constant of
    // .rodata, so the verifier drops this code.
    if (gmon_settings.hold_scratch_us) {
        __u64 until = bpf_ktime_get_ns() + (__u64)gmon_settings.hold_scratch_us * 1000;
        for (int i = 0; i < 4096 && bpf_ktime_get_ns() < until; i++) {}
    }
    __sync_fetch_and_and(&c->busy, ~(1u << slot));
    return 0;
}

static __always_inline int create_in(struct gmon_pt_regs *ctx, __u64 g, __u64 ip, __u64 bp, struct gmon_scratch *s,
                                     struct gmon_cpu_state *c) {
    __u32 exe = bpf_get_attach_cookie(ctx);
    struct gmon_exe_config *cfg = bpf_map_lookup_elem(&gmon_executables, &exe);
    if (!cfg)   // a cookie gmon never gives (its numbers are below GMON_MAX_EXECUTABLES)
        return 0;
    struct gmon_create_event *e = &s->e;
    fill_header(&e->h, GMON_EVENT_CREATE, bpf_get_current_pid_tgid(), exe, 0);
    __u32 len = cfg->g_len;
    if (len > GMON_G_WINDOW)
        len = GMON_G_WINDOW;
    if (bpf_probe_read_user(s->g, len, (void *)(g + cfg->g_offset)) != 0) {
        count(GMON_FAILED_READ);
        __builtin_memset(s->g, 0, sizeof(s->g));
    }
    e->h.goid = g_field(s->g, cfg->goid_at);
    e->startpc = g_field(s->g, cfg->startpc_at);
    e->gopc = g_field(s->g, cfg->gopc_at);
    e->parent_goid = cfg->has_parent_goid ? g_field(s->g, cfg->parent_goid_at) : 0;
    e->probe_ip = ip;
    e->g = g;
    e->stack_len = 0;
    e->_pad2 = 0;
    if (gmon_settings.collect_stack)
        e->stack_len = walk_frames(ip, bp, e->stack, s->frames);
    __u64 size = sizeof(*e) - sizeof(e->stack) + (__u64)(e->stack_len & (GMON_MAX_STACK * 2 - 1)) * 8;
    if (size > sizeof(*e))
        size = sizeof(*e);
    void *ring = cpu_ring();
    struct gmon_gkey key = { .tgid = e->h.tgid, ._pad = 0, .g = g };
    if (!ring || bpf_ringbuf_output(ring, e, size, wakeup_flag(ring, c)) != 0) {
        creation_lost(GMON_LOST_CREATE_RINGBUF, e->h.tgid, g);
    } else if (gmon_lost_pending && bpf_map_delete_elem(&gmon_lost_creations, &key) == 0) {
        // The g's earlier goroutine had its creation lost and its exit too.
        __sync_fetch_and_add(&gmon_lost_pending, -1);
    }
    remember_tgid(c, e->h.tgid);
    return 0;
}

// At CALL runtime.runqput in runtime.newproc.func1 the new g is the second argument (RBX).
SEC("uprobe")
int gmon_create_rbx(struct gmon_pt_regs *ctx) { return on_create(ctx, ctx->bx); }

// Fallback: uretprobe on runtime.newproc1, which returns the new g in RAX.
SEC("uprobe")
int gmon_create_rax(struct gmon_pt_regs *ctx) { return on_create(ctx, ctx->ax); }

static __always_inline int on_exit(void *ctx, __u64 g) {
    __u32 exe = bpf_get_attach_cookie(ctx);
    void *ring = cpu_ring();
    struct gmon_exit_event *e = ring ? bpf_ringbuf_reserve(ring, sizeof(*e), 0) : NULL;
    if (!e) {
        count(GMON_LOST_EXIT_RINGBUF);
        return 0;
    }
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    fill_header(&e->h, GMON_EVENT_EXIT, pid_tgid, exe, 0);
    e->g = g;
    if (gmon_lost_pending) {
        struct gmon_gkey key = { .tgid = pid_tgid >> 32, ._pad = 0, .g = g };
        if (bpf_map_delete_elem(&gmon_lost_creations, &key) == 0) {
            __sync_fetch_and_add(&gmon_lost_pending, -1);
            e->h.flags = GMON_FLAG_CREATION_LOST;
        }
    }
    if (gmon_settings.exit_goid) {
        struct gmon_exe_config *cfg = bpf_map_lookup_elem(&gmon_executables, &exe);
        if (cfg)
            read_u64(&e->h.goid, g, cfg->g_offset + cfg->goid_at);
    }
    struct gmon_cpu_state *c = cpu_state();
    bpf_ringbuf_submit(e, wakeup_flag(ring, c));
    remember_tgid(c, pid_tgid >> 32);
    return 0;
}

// At CALL runtime.mcall in runtime.goexit1 the exiting goroutine's g is in R14.
SEC("uprobe")
int gmon_exit(struct gmon_pt_regs *ctx) { return on_exit(ctx, ctx->r14); }

// At CALL runtime.gdestroy in runtime.coroswitch_m (a coroutine's end, on g0) it is in RAX.
SEC("uprobe")
int gmon_exit_rax(struct gmon_pt_regs *ctx) { return on_exit(ctx, ctx->ax); }

// A traced process is gone (exit) or runs another image (exec): either way its goroutines
// are, so gmon is told and forgets the process.
struct bpf_map;

static long forget_lost_creation(struct bpf_map *map, struct gmon_gkey *key, __u8 *value, __u32 *tgid) {
    if (key->tgid == *tgid && bpf_map_delete_elem(map, key) == 0)
        __sync_fetch_and_add(&gmon_lost_pending, -1);
    return 0;
}

static __always_inline int end_process(__u32 type) {
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tgid = pid_tgid >> 32;
    if (!bpf_map_lookup_elem(&gmon_tgids, &tgid))
        return 0;
    bpf_map_delete_elem(&gmon_tgids, &tgid);
    if (gmon_lost_pending)
        bpf_for_each_map_elem(&gmon_lost_creations, forget_lost_creation, &tgid, 0);
    __u32 zero = 0;
    __u64 *exits = bpf_map_lookup_elem(&gmon_process_exits, &zero);
    if (exits)
        __sync_fetch_and_add(exits, 1);
    void *ring = cpu_ring();
    struct gmon_exit_event *e = ring ? bpf_ringbuf_reserve(ring, sizeof(*e), 0) : NULL;
    if (!e) {
        count(GMON_LOST_PROC_RINGBUF);
        return 0;
    }
    fill_header(&e->h, type, pid_tgid, 0, 0);
    e->g = 0;
    bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
    return 0;
}

// Go never lets its main thread exit on its own, so the thread-group leader's
// exit is the process's exit.
SEC("raw_tp/sched_process_exit")
int gmon_process_exit(void *ctx) {
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    if ((__u32)pid_tgid != (__u32)(pid_tgid >> 32))
        return 0;
    return end_process(GMON_EVENT_PROCESS_EXIT);
}

// exec from any thread: the kernel has ended every other thread of the process by now
// (de_thread), and the new image starts with no goroutines, even when it is the same file.
// With --all, every exec is reported too: the new image may be a Go program to watch
// (gmon reads /proc/PID/exe; a kernel event, not a scan of /proc).
SEC("raw_tp/sched_process_exec")
int gmon_process_exec(void *ctx) {
    end_process(GMON_EVENT_PROCESS_EXEC);
    if (!gmon_settings.report_execs)
        return 0;
    void *ring = cpu_ring();
    struct gmon_exit_event *e = ring ? bpf_ringbuf_reserve(ring, sizeof(*e), 0) : NULL;
    if (!e) {
        count(GMON_LOST_EXEC_RINGBUF);
        return 0;
    }
    fill_header(&e->h, GMON_EVENT_PROGRAM_STARTED, bpf_get_current_pid_tgid(), 0, 0);
    e->g = 0;
    bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
    return 0;
}
