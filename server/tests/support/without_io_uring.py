#!/usr/bin/env python3
"""Runs a command with io_uring_setup refused, as a container runtime's
default seccomp profile refuses it: `without_io_uring.py ERRNO CMD...`
installs a seccomp filter that fails io_uring_setup with ERRNO (EPERM or
ENOSYS), then execs CMD. x86_64 only (the system call number is its)."""

import ctypes
import errno
import os
import platform
import struct
import sys

if platform.machine() != "x86_64":
    sys.exit(f"{sys.argv[0]}: x86_64 only, not {platform.machine()}")
code = getattr(errno, sys.argv[1])

AUDIT_ARCH_X86_64 = 0xC000003E
NR_IO_URING_SETUP = 425
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06


def insn(code_, jt, jf, k):
    return struct.pack("HBBI", code_, jt, jf, k)


program = b"".join([
    insn(BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
    insn(BPF_JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
    insn(BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
    insn(BPF_JEQ_K, 0, 1, NR_IO_URING_SETUP),
    insn(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | code),
    insn(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
])
filters = ctypes.create_string_buffer(program)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


fprog = SockFprog(len(program) // 8, ctypes.addressof(filters))
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
    sys.exit(f"prctl(NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
    sys.exit(f"prctl(SECCOMP): {os.strerror(ctypes.get_errno())}")
os.execv(sys.argv[2], sys.argv[2:])
