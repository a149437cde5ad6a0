"""Hardware profiles given to sizer: validation (exit 2 on anything else) and what they replace."""

import json
import warnings
from pathlib import Path

import pytest

from sizer.cli.main import main
from sizer.errors import InputError
from sizer.hardware.gpus import get_gpu
from sizer.hardware.constants import device_for
from sizer.hardware.kernels import kernel_fit_for
from sizer.hardware.profile import profile_from_dict


def _doc(**compute):
    return {"sizer_profile_version": 1, "env": {"device": "NVIDIA H100 80GB HBM3", "gpu_id": "h100-sxm"},
            "collectives": [], "compute": compute}


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not JSON"),
    (json.dumps({"hello": 1}), "not a sizer hardware profile"),
    (json.dumps({"sizer_profile_version": 99}), "version 99"),
    (json.dumps({"sizer_profile_version": 1, "collectives": [{"op": "all_reduce", "ranks": 2,
                 "segments": [{"latency_s": -1, "busbw_bytes_per_s": 1e9}]}]}),
     "collectives[0].segments[0].latency_s: must be >= 0"),
])
def test_bad_profiles_exit_2(tmp_path, capsys, content, needle):
    path = tmp_path / "p.json"
    path.write_text(content)
    code = main(["step", "--model", "8b", "--phase", "decode", "--context", "128", "--profile", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_missing_profile_file_exit_2(tmp_path, capsys):
    assert main(["comm", "--op", "all_reduce", "--bytes", "1MiB", "--gpus", "2",
                 "--profile", str(tmp_path / "nope.json")]) == 2


def test_measured_constants_replace_defaults_and_say_so():
    gpu = get_gpu("h100-sxm")
    prof = profile_from_dict(_doc(hbm_bytes_per_s=3.0e12, matmul_flops_per_s={"bf16": 7.0e14},
                                  matmul_half_rows=0.0))
    dev = device_for(gpu, prof)
    assert dev.hbm_bytes_per_s == 3.0e12 and dev.matmul_flops_per_s["bf16"] == 7.0e14
    assert dev.matmul_half_rows == 0.0  # a measured 0 is "full rate at any M", not "missing"
    assert dev.provenance["hbm_bytes_per_s"] == "measured"
    assert dev.provenance["attention_flops_per_s:bf16"] == "default"
    assert device_for(gpu).matmul_half_rows == kernel_fit_for(gpu).matmul_half_rows  # the kernel fit's


def test_profile_changes_step_prediction(tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_doc(hbm_bytes_per_s=0.5e12)))
    argv = ["step", "--model", "8b", "--phase", "decode", "--batch", "1", "--context", "1024", "--json"]
    assert main(argv) == 0
    base = json.loads(capsys.readouterr().out)["time_s"]
    assert main(argv + ["--profile", str(path)]) == 0
    slow = json.loads(capsys.readouterr().out)["time_s"]
    assert slow > 3 * base  # decode is bandwidth-bound: 0.5 TB/s instead of 0.60 x 3.35 TB/s


# ---- issue #16 item 3: every field validated on load against the shipped versioned schema

def _fit(**over):
    fit = {"op": "all_reduce", "ranks": 8, "nodes": 1,
           "segments": [{"latency_s": 1.2e-5, "busbw_bytes_per_s": 2.0e11}]}
    fit.update(over)
    return fit


def _v1(**top):
    doc = {"sizer_profile_version": 1, "env": {"device": "NVIDIA H100 80GB HBM3", "gpu_id": "h100-sxm"},
           "collectives": [_fit()], "compute": {"hbm_bytes_per_s": 3.0e12}, "raw": {}}
    doc.update(top)
    return doc


def test_schema_ships_with_the_package_and_names_every_op():
    from importlib import resources

    from sizer.cost.collectives import OPS
    from sizer.hardware.profile import SCHEMAS

    schema = json.loads(resources.files("sizer.hardware").joinpath(SCHEMAS[1]).read_text())
    assert schema["properties"]["sizer_profile_version"] == {"const": 1}
    assert tuple(schema["$defs"]["collective"]["properties"]["op"]["enum"]) == OPS
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    assert '"sizer.hardware" = ["*.schema.json"]' in pyproject and '"jsonschema' in pyproject


def test_a_calibrate_style_v1_profile_loads_whole():
    """What probes/calibrate.py writes (extra fit fields, provenance in env and raw) stays readable."""
    doc = _v1(created="2026-11-23T12:00:00Z",
              collectives=[_fit(min_bytes=8, max_bytes=2**30, n_points=24, n_outliers=1,
                                max_busbw_GBps=401.5, wrong=0, fit_error_pct={"median": 3.1, "max": 9.0},
                                segments=[{"latency_s": 0.0, "busbw_bytes_per_s": 1e9},
                                          {"latency_s": 2e-5, "busbw_bytes_per_s": 4e11}])],
              compute={"hbm_bytes_per_s": 3.0e12, "matmul_flops_per_s": {"bf16": 7e14, "fp32": 5e13},
                       "matmul_half_rows": 0.0, "attention_flops_per_s": {"bf16": 4e14},
                       "kernel_launch_s": {"eager": 8e-6, "graph": 2.5e-6}, "step_overhead_s": 4e-4,
                       "fit_error_pct": {"hbm_bytes_per_s": 2.0, "hbm_bytes_per_s:max": 5.5}},
              env={"backend": "nccl", "device": "cpu", "gpu_id": None, "world_size": 8, "nodes": 1,
                   "notes": [], "topology": {"measured": None}},
              raw={"collectives": [], "wrong_total": 0, "fits": {"membw": {"rate": float("nan")}}})
    prof = profile_from_dict(json.loads(json.dumps(doc)))
    fit = prof.collective("all_reduce", 8)
    assert fit.segments == ((0.0, 1e9), (2e-5, 4e11)) and fit.max_bytes == 2**30
    assert prof.compute_value("step_overhead_s") == 4e-4


@pytest.mark.parametrize("change, needle", [
    (dict(env=5), "env: must be an object, got 5"),
    (dict(raw=[]), "raw: must be an object"),
    (dict(env={"gpu_id": 7}), "env.gpu_id: must be a string or null"),
    (dict(collectives={}), "collectives: must be a list"),
    (dict(compute=[]), "compute: must be an object"),
    (dict(compute={"kernel_launch_s": 8e-6}), "compute.kernel_launch_s: must be an object"),
    (dict(compute={"kernel_launch_s": {"eager": 0}}), "compute.kernel_launch_s.eager: must be >= 1e-09"),
    (dict(compute={"kernel_launch_s": {"graph": 1e-300}}), "compute.kernel_launch_s.graph: must be >= 1e-09"),
    (dict(compute={"kernel_launch_s": {"eagre": 1e-5}}), "compute.kernel_launch_s: unknown key 'eagre'"),
    (dict(compute={"hbm_bytes_per_s": float("nan")}), "compute.hbm_bytes_per_s: must be a finite number, got nan"),
    (dict(compute={"hbm_bytes_per_s": float("inf")}), "compute.hbm_bytes_per_s: must be a finite number, got inf"),
    (dict(compute={"hbm_bytes_per_s": -1}), "compute.hbm_bytes_per_s: must be >= 1e+06, got -1"),
    (dict(compute={"hbm_bytes_per_s": 0}), "compute.hbm_bytes_per_s: must be >= 1e+06"),
    (dict(compute={"hbm_bytes_per_s": 1e-300}), "compute.hbm_bytes_per_s: must be >= 1e+06"),
    (dict(compute={"hbm_bytes_per_s": "3e12"}), "compute.hbm_bytes_per_s: must be a finite number, got '3e12'"),
    (dict(compute={"hbm_bytes_per_s": True}), "compute.hbm_bytes_per_s: must be a finite number, got True"),
    (dict(compute={"matmul_flops_per_s": {"bf16": float("inf")}}), "compute.matmul_flops_per_s.bf16: must be a finite"),
    (dict(compute={"matmul_flops_per_s": 7e14}), "compute.matmul_flops_per_s: must be an object"),
    (dict(compute={"matmul_flops_per_s": {"bfloat16": 7e14}}), "compute.matmul_flops_per_s: unknown key 'bfloat16'"),
    (dict(compute={"matmul_half_rows": -64}), "compute.matmul_half_rows: must be >= 0"),
    (dict(compute={"step_overhead_s": float("nan")}), "compute.step_overhead_s: must be a finite number"),
    (dict(collectives=[_fit(ranks=0)]), "collectives[0].ranks: must be >= 1, got 0"),
    (dict(collectives=[_fit(ranks=2.7)]), "collectives[0].ranks: must be a whole number, got 2.7"),
    (dict(collectives=[_fit(ranks=-2)]), "collectives[0].ranks: must be >= 1"),
    (dict(collectives=[_fit(ranks=True)]), "collectives[0].ranks: must be a whole number, got True"),
    (dict(collectives=[_fit(ranks=10**7)]), "collectives[0].ranks: must be <= 1e+06"),
    (dict(collectives=[_fit(nodes=0)]), "collectives[0].nodes: must be >= 1"),
    (dict(collectives=[_fit(nodes=9)]), "collectives[0].nodes: 9 nodes for 8 ranks"),
    (dict(collectives=[_fit(op="allreduce")]), "collectives[0].op: must be one of all_reduce"),
    (dict(collectives=[{"op": "all_reduce", "ranks": 8}]), "collectives[0]: missing 'segments'"),
    (dict(collectives=[_fit(segments=[])]), "collectives[0].segments: must hold at least 1 item"),
    (dict(collectives=[_fit(segments=[{"latency_s": float("nan"), "busbw_bytes_per_s": 1e9}])]),
     "collectives[0].segments[0].latency_s: must be a finite number, got nan"),
    (dict(collectives=[_fit(segments=[{"latency_s": 0, "busbw_bytes_per_s": float("inf")}])]),
     "collectives[0].segments[0].busbw_bytes_per_s: must be a finite number, got inf"),
    (dict(collectives=[_fit(segments=[{"latency_s": 0, "busbw_bytes_per_s": 1e-300}])]),
     "collectives[0].segments[0].busbw_bytes_per_s: must be >= 0.001"),
    (dict(collectives=[_fit(segments=[{"latency_s": 0, "busbw_bytes_per_s": 1e16}])]),
     "collectives[0].segments[0].busbw_bytes_per_s: must be <= 1e+15"),
    (dict(collectives=[_fit(max_bytes=0)]), "collectives[0].max_bytes: must be >= 1"),
    (dict(collectives=[_fit(min_bytes=2**20, max_bytes=8)]), "min_bytes 1048576 > max_bytes 8"),
    (dict(collectives=[_fit(), _fit()]), "collectives[1] repeats collectives[0]"),
    (dict(collectives=[_fit(implementation="mpi")]), "collectives[0].implementation: must be one of nccl, custom"),
    (dict(sizer_profile_version=True), "version True is not supported"),
    (dict(sizer_profile_version="1"), "version '1' is not supported"),
])
def test_every_strict_field_is_refused_with_its_path(change, needle):
    with pytest.raises(InputError) as exc:
        profile_from_dict(_v1(**change), "p.json")
    message = str(exc.value)
    assert message.startswith("p.json: ") and needle in message and "\n" not in message


@pytest.mark.parametrize("provenance", [
    {}, {"env": {}, "raw": {}}, {"env": {"hostnames": [[1, {"a": None}]], "torch": 2.13, "x": float("nan")}},
    {"raw": {"gemm": "not rows", "membw": [1, "two", {"3": [4]}], "fits": {"x": float("inf")}}},
    {"compute": {"hbm_bytes_per_s": 3e12, "fit_error_pct": {"anything": "goes", "nan": float("nan")}}},
    {"compute": {"measured_later": {"by": "a newer probe"}}},  # an unknown key: kept, unused
    {"collectives": [_fit(), _fit(implementation="custom")]},  # NCCL and the engine's own, same group
])
def test_provenance_blocks_are_lenient(provenance):
    prof = profile_from_dict(_v1(**provenance))
    assert prof.collective("all_reduce", 8) is not None


@pytest.mark.parametrize("data, needle", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"sizer_profile_version": 1, "raw": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"sizer_profile_version": 1, "compute": {"hbm_bytes_per_s": 1' + b"0" * 5000 + b"}}", "not JSON"),
    (b'{"sizer_profile_version": 1, "compute": {"hbm_bytes_per_s": 1e400}}', "must be a finite number, got inf"),
    (b'{"sizer_profile_version": 1, "compute": {"hbm_bytes_per_s": NaN}}', "must be a finite number, got nan"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"", "not JSON"),
])
def test_hostile_profile_files_are_one_line_errors(tmp_path, capsys, data, needle):
    path = tmp_path / "p.json"
    path.write_bytes(data)
    assert main(["comm", "--op", "all_reduce", "--bytes", "1MiB", "--gpus", "2", "--profile", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_profile_size_is_bounded(tmp_path, monkeypatch):
    import sizer.hardware.profile as profile_module

    monkeypatch.setattr(profile_module, "MAX_PROFILE_BYTES", 1000)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_v1(raw={"rows": list(range(1000))})))
    with pytest.raises(InputError, match="larger than"):
        profile_module.load_profile(str(path))
    with pytest.raises(InputError, match="cannot read profile"):
        profile_module.load_profile(str(tmp_path))  # a directory


def test_slowest_valid_bandwidth_gives_finite_times_and_no_overflow(tmp_path, capsys):
    """1e-3 B/s is the floor (probes/fit.py MIN_BUSBW, a latency-only segment): 1 PiB (the
    largest --bytes) then takes ~1e18 s, finite, no numpy overflow warning; below the floor the
    profile is refused (issue #16: 1e-300 gave inf s)."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps(_v1(collectives=[_fit(ranks=2, segments=[{"latency_s": 0, "busbw_bytes_per_s": 1e-3}])])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["comm", "--op", "all_reduce", "--bytes", str(2**50),
                     "--gpus", "2", "--profile", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["time_s"] == pytest.approx(2**50 / 1e-3)  # busbw factor 2(n-1)/n = 1 for 2 ranks
