"""Tests of facegcn_lib.train.allocator: glibc malloc thresholds for CPU training."""

from __future__ import annotations

import pytest

from facegcn_lib.train import allocator
from facegcn_lib.train.allocator import (
    GLIBC_MAX_MMAP_THRESHOLD,
    M_MMAP_THRESHOLD,
    M_TRIM_THRESHOLD,
    MALLOC_ENV,
    AllocatorConfigError,
    MallocConfig,
    keep_freed_memory,
)


class FakeLibc:
    """Records ``mallopt`` calls; answers ``result`` (glibc: 1 on success, 0 on failure)."""

    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.result = result

        def mallopt(param: int, value: int) -> int:  # a function: it takes argtypes, as ctypes'
            self.calls.append((param, value))
            return self.result

        self.mallopt = mallopt


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in MALLOC_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_libc(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> FakeLibc:
    libc = FakeLibc()
    monkeypatch.setattr(allocator, "_glibc", lambda: libc)
    return libc


def test_sets_both_thresholds(fake_libc: FakeLibc) -> None:
    assert keep_freed_memory() is True
    assert fake_libc.calls == [(M_MMAP_THRESHOLD, GLIBC_MAX_MMAP_THRESHOLD),
                               (M_TRIM_THRESHOLD, MallocConfig().trim_threshold_bytes)]
    custom = MallocConfig(mmap_threshold_bytes=2**20, trim_threshold_bytes=2**28)
    fake_libc.calls.clear()
    assert keep_freed_memory(custom) is True
    assert fake_libc.calls == [(M_MMAP_THRESHOLD, 2**20), (M_TRIM_THRESHOLD, 2**28)]


def test_a_refused_setting_is_reported_not_raised(fake_libc: FakeLibc,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    fake_libc.result = 0
    assert keep_freed_memory() is False
    assert "refused" in caplog.text


@pytest.mark.parametrize("name", MALLOC_ENV)
def test_the_users_own_settings_stand(name: str, fake_libc: FakeLibc,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "65536")
    assert keep_freed_memory() is False
    assert fake_libc.calls == []


def test_nothing_happens_off_glibc(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert keep_freed_memory() is False


def test_on_this_machine_it_applies_when_the_c_library_is_glibc(clean_env: None) -> None:
    # the real call (the test process keeps the settings: harmless, as for facegcn train)
    if allocator._glibc() is None:
        pytest.skip("not glibc: keep_freed_memory is a no-op here")
    assert keep_freed_memory() is True


@pytest.mark.parametrize(("kw", "match"), [
    ({"mmap_threshold_bytes": 0}, "mmap_threshold_bytes"),
    ({"mmap_threshold_bytes": GLIBC_MAX_MMAP_THRESHOLD + 1}, "glibc's maximum"),
    ({"trim_threshold_bytes": 2**31}, "C int"),
    ({"trim_threshold_bytes": -1}, "trim_threshold_bytes"),
])
def test_bad_thresholds(kw: dict[str, int], match: str) -> None:
    with pytest.raises(AllocatorConfigError, match=match):
        MallocConfig(**kw)
