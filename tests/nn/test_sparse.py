"""Tests of facegcn_lib.nn.sparse: conversion to torch and the sparse @ dense kernels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from facegcn_lib.nn.sparse import (
    SparseInputError,
    is_symmetric,
    sparse_addmm,
    sparse_addmm_,
    sparse_mm,
    to_torch_sparse,
)


def random_matrix(n: int = 12, density: float = 0.3, seed: int = 0) -> sp.csr_matrix:
    m = sp.random(n, n, density=density, random_state=seed, format="csr")
    return sp.csr_matrix(m + m.T)


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_to_torch_sparse_round_trip(layout: str) -> None:
    m = random_matrix()
    t = to_torch_sparse(m, layout=layout, dtype=torch.float64)  # type: ignore[arg-type]
    assert t.layout == {"csr": torch.sparse_csr, "coo": torch.sparse_coo}[layout]
    assert t.dtype == torch.float64 and t.shape == m.shape
    np.testing.assert_array_equal(t.to_dense().numpy(), m.toarray())
    if layout == "csr":
        assert t.crow_indices().dtype == torch.int32  # small indices: int32
    else:
        assert t.is_coalesced()


def test_to_torch_sparse_defaults_and_torch_inputs() -> None:
    m = random_matrix()
    assert to_torch_sparse(m).dtype == torch.get_default_dtype()
    dense = torch.from_numpy(m.toarray())
    csr = to_torch_sparse(dense)
    assert csr.layout == torch.sparse_csr and csr.dtype == torch.float64
    coo = to_torch_sparse(csr, layout="coo", dtype=torch.float32)
    assert coo.layout == torch.sparse_coo and coo.dtype == torch.float32
    np.testing.assert_allclose(coo.to_dense().numpy(), m.toarray(), rtol=1e-6)


def test_to_torch_sparse_does_not_share_read_only_memory() -> None:
    m = random_matrix()
    m.data.flags.writeable = False
    t = to_torch_sparse(m, dtype=torch.float64)
    t.values().mul_(2.0)  # must not write into the read-only scipy array
    np.testing.assert_array_equal(t.to_dense().numpy(), 2.0 * m.toarray())


@pytest.mark.parametrize(("args", "match"), [
    ({"layout": "bsr"}, "layout"),
    ({"dtype": torch.int64}, "floating"),
])
def test_to_torch_sparse_bad_arguments(args: dict, match: str) -> None:
    with pytest.raises(SparseInputError, match=match):
        to_torch_sparse(random_matrix(), **args)
    with pytest.raises(SparseInputError, match=r"scipy\.sparse"):
        to_torch_sparse(np.eye(3))


@pytest.mark.parametrize("layout", ["csr", "coo"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_kernels_match_dense(layout: str, dtype: torch.dtype) -> None:
    m = random_matrix()
    a = to_torch_sparse(m, layout=layout, dtype=dtype)  # type: ignore[arg-type]
    dense = torch.from_numpy(m.toarray())
    x = torch.randn(12, 5, dtype=torch.float64)
    c = torch.randn(12, 5, dtype=torch.float64)
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-5
    got = sparse_mm(a, x.to(dtype))
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), dense @ x, rtol=tol, atol=tol * 10)
    got = sparse_addmm(c.to(dtype), a, x.to(dtype), beta=-1.0, alpha=2.0)
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), 2 * dense @ x - c, rtol=tol, atol=tol * 10)


def test_sparse_mm_never_reads_its_output_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    # the CPU CSR product writes into an uninitialised buffer with beta = 0: whatever that
    # memory holds (here NaN, forced) must not reach the result, not even in empty rows
    m = random_matrix(density=0.2).tolil()
    m[3, :] = 0  # an empty row: its output is written by nothing but the zero of beta = 0
    m = sp.csr_matrix(m)
    m.eliminate_zeros()
    a = to_torch_sparse(m)
    real_empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *args, **kw: real_empty(*args, **kw).fill_(float("nan")))
    x = torch.randn(12, 7)
    got = sparse_mm(a, x)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, torch.from_numpy(m.toarray()).float() @ x, rtol=1e-5, atol=1e-6)
    assert torch.equal(got[3], torch.zeros(7))


@pytest.mark.parametrize("layout", ["csr", "coo"])
def test_in_place_addmm(layout: str) -> None:
    m = random_matrix()
    a = to_torch_sparse(m, layout=layout, dtype=torch.float64)  # type: ignore[arg-type]
    x = torch.randn(12, 5, dtype=torch.float64)
    c = torch.randn(12, 5, dtype=torch.float64)
    expected = c + 2 * torch.from_numpy(m.toarray()) @ x
    before = c.clone()
    got = sparse_addmm_(c, a, x, alpha=2.0)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    if layout == "csr":  # accumulated into c's memory
        assert got.data_ptr() == c.data_ptr()
    else:  # COO: a new tensor, c untouched
        assert torch.equal(c, before)
    half = sparse_addmm_(c.bfloat16(), to_torch_sparse(m, dtype=torch.bfloat16), x.bfloat16())
    assert half.dtype == torch.bfloat16


def test_is_symmetric() -> None:
    m = random_matrix()
    assert is_symmetric(to_torch_sparse(m))
    assert is_symmetric(to_torch_sparse(m, layout="coo"))
    assert is_symmetric(torch.from_numpy(m.toarray()))
    assert not is_symmetric(to_torch_sparse(sp.csr_matrix(np.triu(m.toarray()))))
    assert not is_symmetric(torch.ones(2, 3))
