"""``--set key=value`` parsing shared by ``sebra rank`` and ``benchmarks/stage2_trial.py``."""

import pytest

from sebra.demo import parse_settings


def test_values_are_json_when_they_parse_else_text():
    got = parse_settings(
        [
            "p_critical=0.9",
            "max_steps=20",
            "compile=true",
            "rank_bins=null",
            "scoring=full",
            "draws_per_step=active",
            "name=a=b",
        ]
    )
    assert got == {
        "p_critical": 0.9,
        "max_steps": 20,
        "compile": True,
        "rank_bins": None,
        "scoring": "full",
        "draws_per_step": "active",
        "name": "a=b",
    }


@pytest.mark.parametrize("bad", ["gap", "=3"])
def test_a_pair_without_key_or_equals_sign_is_refused(bad):
    with pytest.raises(SystemExit, match="key=value"):
        parse_settings([bad])
