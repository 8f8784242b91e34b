// The contract between gmon's BPF program (Sources/GmonProbes/bpf/gmon.bpf.c) and its
// loader and decoder (Sources/GmonProbes): event layout, counters, configuration. One
// definition, compiled by clang for BPF and imported by Swift.
#ifndef GMON_EVENTS_H
#define GMON_EVENTS_H

#ifdef __bpf__
typedef unsigned char gmon_u8;
typedef unsigned int gmon_u32;
typedef unsigned long long gmon_u64;
#else
#include <stdint.h>
typedef uint8_t gmon_u8;
typedef uint32_t gmon_u32;
typedef uint64_t gmon_u64;
#endif

#define GMON_MAX_STACK 64

// runtime.g is read in one piece: its fields gmon needs lie within this many bytes
// (168 at most in Go 1.17–1.27). One read costs less than one per field.
#define GMON_G_WINDOW 256

// Scratch slots per CPU for the creation program. A BPF program on a uprobe runs with
// migration disabled, not preemption: on PREEMPT_RT (or preempt=full) a creation can be
// preempted by another on the same CPU, so each run claims a slot of its own.
#define GMON_SCRATCH_SLOTS 4

// The creator's frames are read this many bytes at a time: a read's fixed cost (~100 ns
// here) is that of copying kilobytes, so a stack's frame records on one goroutine stack
// mostly fall in one read (1024: 3 → 2 reads per creation in make bench's program).
#define GMON_STACK_WINDOW 1024

enum gmon_event_type {
    GMON_EVENT_CREATE = 1,
    GMON_EVENT_EXIT = 2,
    GMON_EVENT_PROCESS_EXIT = 3,
    GMON_EVENT_PROCESS_EXEC = 4,   // the process replaced its image: the old image's goroutines are gone
    GMON_EVENT_PROGRAM_STARTED = 5, // any process ran exec (--all: a program gmon may watch has started)
};

// Indices of the per-CPU loss counters (map "gmon_counters").
enum gmon_counter {
    GMON_LOST_CREATE_RINGBUF = 0,   // ring buffer full: a creation was dropped
    GMON_LOST_EXIT_RINGBUF = 1,     // ring buffer full: an exit was dropped
    GMON_LOST_PROC_RINGBUF = 2,     // ring buffer full: a process exit was dropped
    GMON_FAILED_READ = 3,           // bpf_probe_read_user of runtime.g failed
    GMON_FAILED_STACK = 4,          // a frame could not be read (event sent with the stack so far)
    GMON_TGID_MAP_FULL = 5,         // too many traced processes to track exits
    GMON_LOST_CREATE_UNTRACKED = 6, // a creation lost to a full ring could not be remembered (table full)
    GMON_LOST_EXEC_RINGBUF = 7,     // ring buffer full: a program start (--all) was dropped
    GMON_LOST_CREATE_BUSY = 8,      // every scratch slot of the CPU in use (preempted creations): a creation was dropped
    GMON_COUNTER_MAX = 9,
};

// Executables one loaded program serves: each probe's attach cookie is its executable's
// number, the index of its configuration in the map "gmon_executables".
#define GMON_MAX_EXECUTABLES 4096

// Settings of the whole program, set by gmon before load (.rodata: the verifier drops
// the code they turn off).
struct gmon_settings {
    gmon_u32 collect_stack;        // 0: no creator stacks (cheapest)
    gmon_u32 exit_goid;            // 1: read goid at exit too (only debug logs show it)
    gmon_u64 wakeup_bytes;         // wake gmon once this much is waiting in the ring
    gmon_u32 report_execs;         // 1 (--all): every exec on the host is reported (rare: cheap)
    gmon_u32 hold_scratch_us;      // tests only: a creation holds its scratch slot this long, so a
                                   // preemptible kernel's preemptions land inside it (0: never)
    gmon_u32 scratch_slots;        // tests only: use this many of the GMON_SCRATCH_SLOTS (0: all), so
                                   // the stress shows what one slot would lose
    gmon_u32 _pad;
};

// Where one executable's runtime.g keeps the fields gmon reads ("gmon_executables", by the
// executable's number). The g is read as one window starting at g_offset; the fields are
// 8-byte aligned offsets within it.
struct gmon_exe_config {
    gmon_u64 g_offset;             // offset in runtime.g of the window (the lowest field)
    gmon_u32 g_len;                // window length, at most GMON_G_WINDOW
    gmon_u32 goid_at;
    gmon_u32 gopc_at;
    gmon_u32 startpc_at;
    gmon_u32 parent_goid_at;
    gmon_u32 has_parent_goid;      // 0: the release has no parentGoid
};

// gmon_event_header.flags
#define GMON_FLAG_CREATION_LOST 1   // an exit whose goroutine's creation record was lost (ring full)

struct gmon_event_header {
    gmon_u32 type;
    gmon_u32 tgid;
    gmon_u32 exe;                  // the executable's number (0 for process events)
    gmon_u32 flags;
    gmon_u64 ktime_ns;
    gmon_u64 goid;
};

struct gmon_create_event {
    struct gmon_event_header h;
    gmon_u64 parent_goid;       // the creating goroutine (the new g's parentGoid; 0 before Go 1.21)
    gmon_u64 startpc;
    gmon_u64 gopc;
    gmon_u64 probe_ip;          // where the probe fired: minus the site's link-time address, the load bias
    gmon_u64 g;                 // address of the new runtime.g: what its exit is matched by
    gmon_u32 stack_len;         // number of valid entries in stack
    gmon_u32 _pad2;
    gmon_u64 stack[GMON_MAX_STACK];
};

// A goroutine's exit names its runtime.g by address, which the kernel side has in a
// register: reading goid from the g's memory cost the exiting thread 85–170 ns per
// exit (bpf_stats, alternated runs with and without the read). A g is reused only after
// its goroutine's exit was committed to its CPU's ring, and gmon reads the rings in
// timestamp order, so the address is unique among the live. h.goid is 0 unless
// gmon_config.exit_goid is set (debug logs show it).
struct gmon_exit_event {
    struct gmon_event_header h;
    gmon_u64 g;
};

#endif
