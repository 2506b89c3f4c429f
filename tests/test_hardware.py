"""The slow-bf16 warning: known answers from CPU flag lines, one warning per device, none for fp32."""
import warnings

import pytest

from priorlib import hardware


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 amx_bf16 avx512_bf16\n")
    assert {"avx2", "amx_bf16"} <= hardware.cpu_flags(info)
    assert hardware.cpu_flags(tmp_path / "missing") is None


@pytest.mark.parametrize("flags, native", [("fpu avx avx2 fma", False), ("avx2 avx512f avx512_bf16", True),
                                           ("avx2 amx_bf16 amx_tile", True)])
def test_native_bf16_follows_the_flags(monkeypatch, flags, native):
    monkeypatch.setattr(hardware, "cpu_flags", lambda path="/proc/cpuinfo": frozenset(flags.split()))
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    hardware.native_bf16.cache_clear()
    try:
        assert hardware.native_bf16("cpu") is native
    finally:
        hardware.native_bf16.cache_clear()


def test_bf16_on_a_cpu_without_it_warns_once_and_fp32_never(monkeypatch):
    monkeypatch.setattr(hardware, "native_bf16", lambda device="cpu": False)
    monkeypatch.setattr(hardware, "_warned", set())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert hardware.warn_if_slow_bf16("fp32", "cpu") is False
        assert hardware.warn_if_slow_bf16("bf16", "cpu") is True
        assert hardware.warn_if_slow_bf16("bf16", "cpu") is False
    assert len(seen) == 1 and issubclass(seen[0].category, hardware.SlowPrecisionWarning)
    assert "--precision fp32" in str(seen[0].message)
    monkeypatch.setattr(hardware, "native_bf16", lambda device="cpu": True)
    assert hardware.warn_if_slow_bf16("bf16", "cuda:0") is False
