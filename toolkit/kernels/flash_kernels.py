"""Triton kernels of causal FlashAttention-2 with grouped KV heads, key padding and a KV offset.

Conventions shared by every kernel (``B`` batch, ``H`` query heads, ``Hkv`` KV heads,
``GROUP = H // Hkv``, ``L`` queries, ``S`` keys, ``D`` head dim):

- query row ``i`` sits at absolute position ``S - L + i`` and sees key ``n`` iff
  ``n <= S - L + i`` and (with padding) ``key_padding[b, n]``;
- query head ``h`` reads KV head ``h // GROUP``;
- scores are kept in base 2: ``qk * scale * log2(e)``; ``LSE`` holds the base-2 logsumexp of
  each row, ``+inf`` for a row that sees no key (its output and gradients are zero);
- ``UPCAST`` computes every dot in fp32 (the interpreter's bf16/fp16 dots are wrong);
  ``PRECISION`` is the ``tl.dot`` input precision ("ieee" for fp32 tensors).

Each loop over key (or query) blocks is split into blocks that lie entirely on the visible side
of the causal diagonal (no causal mask needed) and blocks that cross it.
"""

from __future__ import annotations

import triton
import triton.language as tl

# Sentinel for the running max: finite so that ``exp2(m_old - m_new)`` never sees ``inf - inf``.
_NEG_BIG = tl.constexpr(-1.0e30)


@triton.jit
def _fwd_inner(acc, l_i, m_i, q, k_base, v_base, kp_base, sks, svs, offs_m, offs_d, offset, S,
               n_lo, n_hi, scale_log2,
               BLOCK_N: tl.constexpr, ON_DIAGONAL: tl.constexpr, HAS_PAD: tl.constexpr,
               UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(n_lo, n_hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < S
        if ON_DIAGONAL:
            kT = tl.load(k_base + cols[None, :] * sks + offs_d[:, None], mask=col_ok[None, :], other=0.0)
            v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :], mask=col_ok[:, None], other=0.0)
        else:  # below the diagonal every key is in bounds: unmasked loads pipeline better
            kT = tl.load(k_base + cols[None, :] * sks + offs_d[:, None])
            v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :])
        if UPCAST:
            kT = kT.to(tl.float32)
            v = v.to(tl.float32)
        qk = tl.dot(q, kT, input_precision=PRECISION) * scale_log2
        if ON_DIAGONAL:
            keep = ((offset + offs_m[:, None]) >= cols[None, :]) & col_ok[None, :]
            qk = tl.where(keep, qk, float("-inf"))
        if HAS_PAD:
            real = tl.load(kp_base + cols, mask=col_ok, other=0)
            qk = tl.where(real[None, :] != 0, qk, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None], input_precision=PRECISION)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _query_block(Q, sqb, sqh, sql, H, GROUP, L, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """This program's batch, query head, KV head, rows and query tile (forward and dQ share it).
    Row blocks run in reverse order so the longest causal rows start first (load balance)."""
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = pid_bh % H
    hk = (h // GROUP).to(tl.int64)
    h = h.to(tl.int64)
    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < L
    q = tl.load(Q + b * sqb + h * sqh + offs_m[:, None] * sql + offs_d[None, :],
                mask=row_ok[:, None], other=0.0)
    return b, h, hk, start_m, offs_m, offs_d, row_ok, q


@triton.jit
def fwd_kernel(Q, K, V, O, LSE, KP,
               sqb, sqh, sql, skb, skh, sks, svb, svh, svs, sob, soh, sol, skpb,
               H, GROUP, L, S, scale_log2, LEN_BUCKET,
               HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
               HAS_PAD: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    """Grid ``(cdiv(L, BLOCK_M), B * H)``: one block of query rows of one head."""
    b, h, hk, start_m, offs_m, offs_d, row_ok, q = _query_block(
        Q, sqb, sqh, sql, H, GROUP, L, HEAD_DIM, BLOCK_M)
    offset = S - L
    if UPCAST:
        q = q.to(tl.float32)
    k_base = K + b * skb + hk * skh
    v_base = V + b * svb + hk * svh
    kp_base = KP + b * skpb
    m_i = tl.full([BLOCK_M], _NEG_BIG, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    # Keys [0, n_full) are visible to every row of this block; [n_full, n_end) cross the diagonal.
    n_full = (offset + start_m + 1) // BLOCK_N * BLOCK_N
    n_end = tl.minimum(S, offset + start_m + BLOCK_M)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, kp_base, sks, svs, offs_m, offs_d,
                               offset, S, 0, n_full, scale_log2,
                               BLOCK_N, False, HAS_PAD, UPCAST, PRECISION)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, kp_base, sks, svs, offs_m, offs_d,
                               offset, S, n_full, n_end, scale_log2,
                               BLOCK_N, True, HAS_PAD, UPCAST, PRECISION)
    empty = l_i == 0.0
    out = acc / tl.where(empty, 1.0, l_i)[:, None]
    lse = tl.where(empty, float("inf"), m_i + tl.math.log2(tl.where(empty, 1.0, l_i)))
    tl.store(LSE + (b * H + h) * L + offs_m, lse, mask=row_ok)
    tl.store(O + b * sob + h * soh + offs_m[:, None] * sol + offs_d[None, :],
             out.to(O.dtype.element_ty), mask=row_ok[:, None])


@triton.jit
def delta_kernel(O, DO, DELTA, sob, soh, sol, sdb, sdh, sdl, H, L,
                 HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """``DELTA[b, h, i] = sum_d O * dO`` (fp32); grid ``(cdiv(L, BLOCK_M), B * H)``."""
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m[:, None] < L
    o = tl.load(O + b * sob + h * soh + offs_m[:, None] * sol + offs_d[None, :], mask=row_ok, other=0.0)
    do = tl.load(DO + b * sdb + h * sdh + offs_m[:, None] * sdl + offs_d[None, :], mask=row_ok, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + (b * H + h) * L + offs_m, delta, mask=offs_m < L)


@triton.jit
def _dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, sql, sdl, cols, key_ok,
                offs_d, offset, L, m_lo, m_hi, scale_log2,
                BLOCK_M: tl.constexpr, ON_DIAGONAL: tl.constexpr, UPCAST: tl.constexpr,
                PRECISION: tl.constexpr):
    offs_m = tl.arange(0, BLOCK_M)
    for start_m in range(m_lo, m_hi, BLOCK_M):
        rows = start_m + offs_m
        row_ok = rows < L
        q = tl.load(q_base + rows[:, None] * sql + offs_d[None, :], mask=row_ok[:, None], other=0.0)
        do = tl.load(do_base + rows[:, None] * sdl + offs_d[None, :], mask=row_ok[:, None], other=0.0)
        lse = tl.load(lse_base + rows, mask=row_ok, other=float("inf"))
        delta = tl.load(delta_base + rows, mask=row_ok, other=0.0)
        if UPCAST:
            q = q.to(tl.float32)
            do = do.to(tl.float32)
        qkT = tl.dot(k, tl.trans(q), input_precision=PRECISION) * scale_log2  # [BLOCK_N, BLOCK_M]
        keep = key_ok[:, None]
        if ON_DIAGONAL:
            keep = keep & ((offset + rows[None, :]) >= cols[:, None])
        pT = tl.math.exp2(tl.where(keep, qkT, float("-inf")) - lse[None, :])
        dv = tl.dot(pT.to(do.dtype), do, dv, input_precision=PRECISION)
        dpT = tl.dot(v, tl.trans(do), input_precision=PRECISION)
        dsT = pT * (dpT - delta[None, :])
        dk = tl.dot(dsT.to(q.dtype), q, dk, input_precision=PRECISION)
    return dk, dv


@triton.jit
def dkdv_kernel(Q, K, V, DO, LSE, DELTA, DK, DV, KP,
                sqb, sqh, sql, skb, skh, sks, svb, svh, svs, sdb, sdh, sdl,
                sdkb, sdkh, sdks, sdvb, sdvh, sdvs, skpb,
                H, HKV, GROUP, L, S, scale, scale_log2, LEN_BUCKET,
                HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                HAS_PAD: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    """Grid ``(cdiv(S, BLOCK_N), B * Hkv)``: one block of keys of one KV head, summed over the
    ``GROUP`` query heads that read it (no atomics)."""
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // HKV).to(tl.int64)
    hk = (pid_bh % HKV).to(tl.int64)
    offset = S - L
    start_n = pid_n * BLOCK_N
    cols = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    key_ok = cols < S
    k = tl.load(K + b * skb + hk * skh + cols[:, None] * sks + offs_d[None, :],
                mask=key_ok[:, None], other=0.0)
    v = tl.load(V + b * svb + hk * svh + cols[:, None] * svs + offs_d[None, :],
                mask=key_ok[:, None], other=0.0)
    if UPCAST:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    if HAS_PAD:
        key_ok = key_ok & (tl.load(KP + b * skpb + cols, mask=key_ok, other=0) != 0)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    # Query rows [m_lo, m_full) cross the diagonal of this key block; rows from m_full see it all.
    m_lo = tl.maximum(start_n - offset, 0) // BLOCK_M * BLOCK_M
    m_full = tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - offset, 0), BLOCK_M) * BLOCK_M
    m_full = tl.minimum(tl.maximum(m_full, m_lo), L)
    for g in range(0, GROUP):
        h = hk * GROUP + g
        q_base = Q + b * sqb + h * sqh
        do_base = DO + b * sdb + h * sdh
        lse_base = LSE + (b * H + h) * L
        delta_base = DELTA + (b * H + h) * L
        dk, dv = _dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, sql, sdl, cols,
                             key_ok, offs_d, offset, L, m_lo, m_full, scale_log2,
                             BLOCK_M, True, UPCAST, PRECISION)
        dk, dv = _dkdv_inner(dk, dv, k, v, q_base, do_base, lse_base, delta_base, sql, sdl, cols,
                             key_ok, offs_d, offset, L, m_full, L, scale_log2,
                             BLOCK_M, False, UPCAST, PRECISION)
    store_ok = (cols < S)[:, None]
    tl.store(DK + b * sdkb + hk * sdkh + cols[:, None] * sdks + offs_d[None, :],
             (dk * scale).to(DK.dtype.element_ty), mask=store_ok)
    tl.store(DV + b * sdvb + hk * sdvh + cols[:, None] * sdvs + offs_d[None, :],
             dv.to(DV.dtype.element_ty), mask=store_ok)


@triton.jit
def _dq_inner(dq, q, do, lse, delta, k_base, v_base, kp_base, sks, svs, offs_m, offs_d, offset, S,
              n_lo, n_hi, scale_log2,
              BLOCK_N: tl.constexpr, ON_DIAGONAL: tl.constexpr, HAS_PAD: tl.constexpr,
              UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    offs_n = tl.arange(0, BLOCK_N)
    for start_n in range(n_lo, n_hi, BLOCK_N):
        cols = start_n + offs_n
        col_ok = cols < S
        if ON_DIAGONAL:
            k = tl.load(k_base + cols[:, None] * sks + offs_d[None, :], mask=col_ok[:, None], other=0.0)
            v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :], mask=col_ok[:, None], other=0.0)
        else:
            k = tl.load(k_base + cols[:, None] * sks + offs_d[None, :])
            v = tl.load(v_base + cols[:, None] * svs + offs_d[None, :])
        if UPCAST:
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        qk = tl.dot(q, tl.trans(k), input_precision=PRECISION) * scale_log2
        if ON_DIAGONAL:
            keep = ((offset + offs_m[:, None]) >= cols[None, :]) & col_ok[None, :]
            qk = tl.where(keep, qk, float("-inf"))
        if HAS_PAD:
            real = tl.load(kp_base + cols, mask=col_ok, other=0)
            qk = tl.where(real[None, :] != 0, qk, float("-inf"))
        p = tl.math.exp2(qk - lse[:, None])
        dp = tl.dot(do, tl.trans(v), input_precision=PRECISION)
        ds = p * (dp - delta[:, None])
        dq = tl.dot(ds.to(k.dtype), k, dq, input_precision=PRECISION)
    return dq


@triton.jit
def dq_kernel(Q, K, V, DO, LSE, DELTA, DQ, KP,
              sqb, sqh, sql, skb, skh, sks, svb, svh, svs, sdb, sdh, sdl, sdqb, sdqh, sdql, skpb,
              H, GROUP, L, S, scale, scale_log2, LEN_BUCKET,
              HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
              HAS_PAD: tl.constexpr, UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    """Grid ``(cdiv(L, BLOCK_M), B * H)``: dQ of one block of query rows of one head."""
    b, h, hk, start_m, offs_m, offs_d, row_ok, q = _query_block(
        Q, sqb, sqh, sql, H, GROUP, L, HEAD_DIM, BLOCK_M)
    offset = S - L
    do = tl.load(DO + b * sdb + h * sdh + offs_m[:, None] * sdl + offs_d[None, :],
                 mask=row_ok[:, None], other=0.0)
    if UPCAST:
        q = q.to(tl.float32)
        do = do.to(tl.float32)
    lse = tl.load(LSE + (b * H + h) * L + offs_m, mask=row_ok, other=float("inf"))
    delta = tl.load(DELTA + (b * H + h) * L + offs_m, mask=row_ok, other=0.0)
    k_base = K + b * skb + hk * skh
    v_base = V + b * svb + hk * svh
    kp_base = KP + b * skpb
    dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    n_full = (offset + start_m + 1) // BLOCK_N * BLOCK_N
    n_end = tl.minimum(S, offset + start_m + BLOCK_M)
    dq = _dq_inner(dq, q, do, lse, delta, k_base, v_base, kp_base, sks, svs, offs_m, offs_d, offset, S,
                   0, n_full, scale_log2, BLOCK_N, False, HAS_PAD, UPCAST, PRECISION)
    dq = _dq_inner(dq, q, do, lse, delta, k_base, v_base, kp_base, sks, svs, offs_m, offs_d, offset, S,
                   n_full, n_end, scale_log2, BLOCK_N, True, HAS_PAD, UPCAST, PRECISION)
    tl.store(DQ + b * sdqb + h * sdqh + offs_m[:, None] * sdql + offs_d[None, :],
             (dq * scale).to(DQ.dtype.element_ty), mask=row_ok[:, None])
