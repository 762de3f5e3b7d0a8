#!/usr/bin/env python3
"""shm_poke.py SEGMENT KIND NAME IN_USE - set a live counter's in_use behind the
daemon's back, as a crash between a count change and its record could leave it.
The layout is sluice's shared-memory ABI (shm/sl_shm.h)."""
import mmap, os, struct, sys

KINDS = {"binding_domain": 1, "binding_host": 2, "host": 3, "group_domain": 4,
         "domain": 5, "binding": 6, "server": 7, "reserve": 8, "cluster": 9,
         "throttle_connections": 10, "throttle_messages": 11, "action_cap": 12}

seg, kind, name, in_use = sys.argv[1], KINDS[sys.argv[2]], sys.argv[3].encode(), int(sys.argv[4])
fd = os.open("/dev/shm" + seg, os.O_RDWR)
m = mmap.mmap(fd, 0)
magic, version, _hs, slot_size, _os, capacity, _oc, slots_off, _ow, arena_off = \
    struct.unpack_from("<QIIIIIIQQQ", m, 0)
assert magic == 0x534c5549434531 and version == 7 and slot_size == 128
for i in range(capacity):
    off = slots_off + i * slot_size
    tag, count = struct.unpack_from("<QQ", m, off)
    key_off, name_len, _n2, k = struct.unpack_from("<IHHB", m, off + 40)
    if tag & 3 != 2 or k != kind:
        continue
    if m[arena_off + key_off: arena_off + key_off + name_len] != name:
        continue
    seq = (count >> 32) + 1
    struct.pack_into("<Q", m, off + 8, (seq << 32) | in_use)
    print(f"slot {i}: in_use set to {in_use}")
    sys.exit(0)
sys.exit(f"no live {sys.argv[2]} counter named {sys.argv[3]}")
