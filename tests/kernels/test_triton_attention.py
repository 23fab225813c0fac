"""Runs the Triton kernel cases (``interpreter_cases.py``) in a process of their own: on the
CPU under Triton's interpreter, which must be on before triton is first imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from toolkit.errors import ToolkitError

CASES = Path(__file__).with_name("interpreter_cases.py")


def test_kernel_cases_pass_under_the_interpreter_or_on_gpu():
    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["TRITON_INTERPRET"] = "1"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider", "-x"],
        env=env, capture_output=True, text=True, timeout=540)
    report = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, report
    assert " passed" in report and "skipped" not in report, report


@pytest.mark.skipif(torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1",
                    reason="the kernel can run here")
def test_forcing_triton_on_cpu_without_the_interpreter_is_a_toolkit_error():
    from toolkit.kernels import attention

    q = torch.zeros(1, 2, 8, 16)
    with pytest.raises(ToolkitError, match="TRITON_INTERPRET=1"):
        attention(q, q, q, backend="triton")
