"""Traces and length distributions: the column names of vidur, Azure (Splitwise), Mooncake and
ShareGPT-derived files, CSV and JSON Lines, and one-line errors naming line and column."""

import math

import numpy as np
import pytest

from sizer.errors import InputError
from sizer.sim import Traffic, generate, parse_lengths, read_trace


def write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def test_vidur_csv_columns(tmp_path):
    # microsoft/vidur data/processed_traces/splitwise_conv.csv header and first rows
    f = write(tmp_path, "v.csv", "arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,374,44\n4.314579,396,109\n")
    tr = read_trace(f)
    assert tr.isl.tolist() == [374, 396] and tr.osl.tolist() == [44, 109]
    assert tr.arrival_s.tolist() == pytest.approx([0.0, 4.314579])


def test_mooncake_jsonl_timestamps_in_milliseconds(tmp_path):
    f = write(tmp_path, "m.jsonl", '{"timestamp": 1000, "input_length": 6755, "output_length": 500, "hash_ids": [1]}\n'
                                    '{"timestamp": 3500, "input_length": 7319, "output_length": 490}\n')
    tr = read_trace(f)
    assert tr.arrival_s.tolist() == [0.0, 2.5]
    assert tr.isl.tolist() == [6755, 7319]


def test_azure_datetimes_and_lengths_only_files(tmp_path):
    f = write(tmp_path, "a.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,4808,10\n"
                                  "2023-11-16 18:15:50.9951690,3180,8\n")
    tr = read_trace(f)
    assert tr.arrival_s[1] == pytest.approx(4.314579, abs=1e-5)
    g = write(tmp_path, "s.jsonl", '{"input_len": 10, "output_len": 20}\n{"input_len": 30, "output_len": 40}\n')
    tr = read_trace(g)
    assert tr.arrival_s is None
    wl = generate(Traffic(rate_rps=5, requests=5, trace=tr))  # lengths cycle, arrivals at 5 req/s
    assert wl.isl.tolist() == [10, 30, 10, 30, 10]


def test_timed_trace_is_rescaled_to_a_given_rate(tmp_path):
    f = write(tmp_path, "t.csv", "arrival_s,input_tokens,output_tokens\n0,1,1\n1,1,1\n2,1,1\n4,1,1\n")
    tr = read_trace(f)
    assert generate(Traffic(trace=tr)).arrival_s.tolist() == [0, 1, 2, 4]
    assert generate(Traffic(trace=tr, rate_rps=1.5)).arrival_s.tolist() == pytest.approx([0, 0.5, 1, 2])


@pytest.mark.parametrize("text, message", [
    ("arrival_s,input_tokens,output_tokens\n0,12,5\n1,abc,5\n", "line 3, column 'input_tokens'"),
    ("arrival_s,input_tokens,output_tokens\n0,12,-5\n", "negative length"),
    ("arrival_s,input_tokens,output_tokens\n1,12,5\n0,12,5\n", "line 3, column 'arrival_s'"),
    ("when,input_tokens,output_tokens\n0,12,5\n", None),  # no arrival column: fine
    ("arrival_s,prompt,output_tokens\n0,12,5\n", "no prompt-length column"),
    ("arrival_s,input_tokens,output_tokens\n0,12\n", "line 2, column 'output_tokens': missing value"),
    ('{"input_len": 3, "output_len": 4}\n{"input_len": 3, output_len: 4}\n', "line 2: not JSON"),
    ("arrival_s,input_tokens,output_tokens\n0,12.5,5\n", "whole token count"),
    ("arrival_s,input_tokens,output_tokens\n", "no requests"),
])
def test_bad_traces_name_line_and_column(tmp_path, text, message):
    f = write(tmp_path, "bad.txt", text)
    if message is None:
        assert read_trace(f).arrival_s is None
        return
    with pytest.raises(InputError, match=message):
        read_trace(f)


def test_length_distributions(tmp_path):
    rng = np.random.default_rng(0)
    assert parse_lengths("512").sample(rng, 3).tolist() == [512] * 3
    u = parse_lengths("uniform:100,200").sample(rng, 20000)
    assert u.min() >= 100 and u.max() <= 200 and u.mean() == pytest.approx(150, rel=0.01)
    ln = parse_lengths("lognormal:1000,500").sample(rng, 200000)
    assert ln.mean() == pytest.approx(1000, rel=0.01) and ln.std() == pytest.approx(500, rel=0.02)
    nm = parse_lengths("normal:1000,100").sample(rng, 20000)
    assert nm.mean() == pytest.approx(1000, rel=0.01) and nm.min() >= 1


@pytest.mark.parametrize("text", ["uniform:200,100", "uniform:0,10", "normal:-5,1", "lognormal:100,-1",
                                  "gamma:1,2", "uniform:1", "normal:a,b", "nan"])
def test_impossible_distributions_are_bad_input(text):
    with pytest.raises(InputError):
        parse_lengths(text)


def test_arrivals_scale_with_the_rate_for_one_seed():
    a = generate(Traffic(rate_rps=2, requests=100)).arrival_s
    b = generate(Traffic(rate_rps=8, requests=100)).arrival_s
    assert np.allclose(a, 4 * b) and a[0] == 0.0
    assert generate(Traffic(rate_rps=math.inf, requests=7)).arrival_s.tolist() == [0.0] * 7
    c = generate(Traffic(rate_rps=4, requests=5, arrival="constant")).arrival_s
    assert c.tolist() == [0, 0.25, 0.5, 0.75, 1.0]
    d = generate(Traffic(rate_rps=10, duration_s=100)).arrival_s
    assert d.max() < 100 and len(d) == pytest.approx(1000, rel=0.1)
