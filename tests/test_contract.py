"""Property tests of the CLI contract over generated inputs (issue #16, "make it stay fixed").

Strategies (tests/contract.py) generate CLI argument lists over every sub-command, hardware
profiles and `nvidia-smi topo -m` matrices, valid and corrupted in one place. For each: exit
code in {0, 1, 2}; 2 exactly for the corrupted ones, in one line; no traceback; with --json one
JSON document with every number finite; no numpy warning; an answer in bounded time.

A bounded number of examples runs here (SIZER_FUZZ_EXAMPLES overrides it, e.g. 1000);
benchmarks/fuzz.py runs many more and counts breaches by cause. The example database lives in
.hypothesis/, which git ignores.
"""

import os

from hypothesis import HealthCheck, given, settings

import contract
import file_strategies

SCALE = int(os.environ.get("SIZER_FUZZ_EXAMPLES", "0"))
LIMIT_S = 60.0  # generous: 2 shared cores; a breach is a hang, not a slow-ish answer


def _settings(examples: int):
    return settings(max_examples=SCALE or examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _assert_contract(case):
    found, outcome = contract.check(case, limit_s=LIMIT_S, slow_s=LIMIT_S)
    assert not found, (found, case.argv, case.corrupted, outcome.err[-400:])


@_settings(200)
@given(case=contract.cli_cases())
def test_cli_argument_lists_keep_the_contract(case):
    _assert_contract(case)


@_settings(40)
@given(case=contract.cli_cases(commands=("recommend",)))
def test_recommend_argument_lists_keep_the_contract(case):
    _assert_contract(case)


@_settings(150)
@given(case=file_strategies.profile_cases())
def test_profiles_keep_the_contract(case):
    _assert_contract(case)


@_settings(100)
@given(case=file_strategies.topology_cases())
def test_topology_files_keep_the_contract(case):
    _assert_contract(case)
