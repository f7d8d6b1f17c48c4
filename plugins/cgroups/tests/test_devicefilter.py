"""The eBPF device program's assembly (no root); the conformance suite runs it in the kernel."""

import struct

import pytest

from dockyard.drivers.cgroups import DEFAULT_DEVICE_RULES_HEAD, DEFAULT_DEVICE_RULES_TAIL, DeviceRule
from dockyard.errors import InvalidArgument
from dockyard_cgroups import devicefilter as bpf


def decode(prog: bytes) -> list[tuple[int, int, int, int, int]]:
    out = []
    for i in range(0, len(prog), 8):
        code, regs, off, imm = struct.unpack("<BBhi", prog[i:i + 8])
        out.append((code, regs & 0xF, regs >> 4, off, imm))
    return out


def test_one_rule_block_jumps_past_itself():
    prog = decode(bpf.assemble([DeviceRule(True, "c", 1, 3, "rw")]))
    body = prog[6:]  # after the prologue
    # JNE type, access test (mov, and, jne), JNE major, JNE minor, mov r0 1, exit, mov r0 0, exit
    assert [i[0] for i in body] == [bpf.JNE_K, bpf.MOV_X, bpf.AND_K, bpf.JNE_K, bpf.JNE_K, bpf.JNE_K,
                                    bpf.MOV_K, bpf.EXIT, bpf.MOV_K, bpf.EXIT]
    assert body[0][3:] == (7, 2)  # char device, else skip the 7 instructions that follow
    assert body[2][4] == 1  # requested access outside "rw" (= mknod) fails the rule
    assert body[3][3] == 4 and body[4][3:] == (3, 1) and body[5][3:] == (2, 3)
    assert body[6][4] == 1 and body[8][4] == 0  # allow; nothing matched: deny


def test_last_rule_is_tested_first_and_a_catch_all_ends_the_program():
    rules = [*DEFAULT_DEVICE_RULES_HEAD, *DEFAULT_DEVICE_RULES_TAIL]
    prog = decode(bpf.assemble(rules))
    assert prog[6][0] == bpf.JNE_K and prog[6][4] == 2  # the tail's last rule (c 5:2) comes first
    assert prog[-2:] == [(bpf.MOV_K, 0, 0, 0, 0), (bpf.EXIT, 0, 0, 0, 0)]  # "a" deny: unconditional, last
    assert len(bpf.assemble([DeviceRule(True, "a"), DeviceRule(True, "c", 1, 3)])) // 8 == 6 + 5 + 2  # no deny epilogue


def test_bad_rule_is_refused():
    with pytest.raises(InvalidArgument):
        bpf.assemble([DeviceRule(True, "x", 1, 1, "rwm")])
