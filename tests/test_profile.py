"""Hardware profiles given to sizer: validation (exit 2 on anything else) and what they replace."""

import json

import pytest

from sizer.cli.main import main
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
                 "segments": [{"latency_s": -1, "busbw_bytes_per_s": 1e9}]}]}), "malformed"),
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
