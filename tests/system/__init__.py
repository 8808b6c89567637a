"""System tests on the real Linux tape stack (tgt + a QEMU guest); see harness/."""
