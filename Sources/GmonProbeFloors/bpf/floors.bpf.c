// Floors for `make bench`, kept out of gmon's own object: what a uprobe at gmon's sites
// costs when it only counts (count-only), and when it hands an empty record per hit to
// user space (delivery floor: the least any tool pays that delivers each event).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "gmon_events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct floors_ring {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 16);   // a template: the loader creates the rings
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 1);         // the loader sets it to the number of possible CPUs
    __type(key, __u32);
    __array(values, struct floors_ring);
} floors_rings SEC(".maps");

// Per-CPU counts, each in a map of its own.
#define FLOORS_COUNTER(name)                 \
    struct {                                 \
        __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); \
        __uint(max_entries, 1);              \
        __type(key, __u32);                  \
        __type(value, __u64);                \
    } name SEC(".maps")

FLOORS_COUNTER(floors_creations);
FLOORS_COUNTER(floors_exits);
FLOORS_COUNTER(floors_ring_full);

static __always_inline void count(void *map) {
    __u32 zero = 0;
    __u64 *v = bpf_map_lookup_elem(map, &zero);
    if (v)
        *v += 1;
}

SEC("uprobe")
int floors_count_create(void *ctx) { count(&floors_creations); return 0; }

SEC("uprobe")
int floors_count_exit(void *ctx) { count(&floors_exits); return 0; }

// An empty record per hit, stamped 0: the reader's merge hands equally stamped records
// out ring after ring. Woken like gmon's program: once a quarter ring waits, checked on
// one event in 64 (here by a per-CPU counter of records).
FLOORS_COUNTER(floors_events);

SEC("uprobe")
int floors_deliver(void *ctx) {
    __u32 cpu = bpf_get_smp_processor_id(), zero = 0;
    void *ring = bpf_map_lookup_elem(&floors_rings, &cpu);
    struct gmon_event_header *e = ring ? bpf_ringbuf_reserve(ring, sizeof(*e), 0) : 0;
    if (!e) {
        count(&floors_ring_full);
        return 0;
    }
    __builtin_memset(e, 0, sizeof(*e));
    __u64 flags = BPF_RB_NO_WAKEUP;
    __u64 *n = bpf_map_lookup_elem(&floors_events, &zero);
    if (n && (++*n & 63) == 0 && bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA) >= bpf_ringbuf_query(ring, BPF_RB_RING_SIZE) / 4)
        flags = BPF_RB_FORCE_WAKEUP;
    bpf_ringbuf_submit(e, flags);
    return 0;
}
