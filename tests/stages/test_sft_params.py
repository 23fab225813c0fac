"""SFT stage options that cannot work are recipe errors before anything loads."""

import pytest


def test_sft_rejects_a_speaking_warmup_before_its_steps() -> None:
    """SFT has no pre-training data to warm up on first: a warm-up left at ``start`` would be
    silently skipped, so it is a one-line recipe error that names the key."""
    from types import SimpleNamespace

    from toolkit.errors import ToolkitError
    from toolkit.stages.sft import SftParams, run

    with pytest.raises(ToolkitError, match="stage_args.sft.speaking_warmup_at"):
        run(SimpleNamespace(params=SftParams(speaking_warmup=10)))
