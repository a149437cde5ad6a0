"""Property-based: generated config.json files, valid and corrupted, against the contract of
every model-level command (issue #16 "Make it stay fixed"; strategies in config_cases.py).
A few dozen examples per run; SIZER_FUZZ_EXAMPLES (or benchmarks/fuzz_configs.py) runs more.
The example database stays out of git (.hypothesis/ is ignored; database=None here)."""

import os

from config_cases import COMMANDS, check_contract, corrupted_configs, run_case, valid_configs
from hypothesis import given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("SIZER_FUZZ_EXAMPLES", "40"))


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(cfg=valid_configs(), argv=st.sampled_from(COMMANDS))
def test_valid_configs_answer_with_finite_json(cfg, argv):
    check_contract(*run_case(cfg, argv), corrupted=False)


@settings(max_examples=EXAMPLES, deadline=None, database=None)
@given(cfg=corrupted_configs(), argv=st.sampled_from(COMMANDS))
def test_corrupted_configs_exit_2_in_one_line(cfg, argv):
    check_contract(*run_case(cfg, argv), corrupted=True)
