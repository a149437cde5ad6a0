"""`nvidia-smi topo -m` files that are not what nvidia-smi prints are refused in one line, at once
(issue #16 items 1 and 4): relations, symmetry, shape and size are checked before anything is
built from them. Real samples: tests/data/topo (SOURCES.md)."""

import os

import pytest
from file_strategies import topo_text

from sizer.cli.main import main
from sizer.errors import InputError
from sizer.hardware.gpus import get_gpu
from sizer.hardware.topo_smi import MAX_GPUS, MAX_TEXT_BYTES, parse_topo_matrix, read_topology_file

DATA = os.path.join(os.path.dirname(__file__), "data", "topo")
H100 = get_gpu("h100-sxm")


def _rel(n, fill="SYS"):
    return [["X" if i == j else fill for j in range(n)] for i in range(n)]


def _pair(value, n=4):
    rel = _rel(n, "NV4")
    rel[0][1] = rel[1][0] = value
    return rel


@pytest.mark.parametrize("rel, needle", [
    (_pair("NV0"), "a bond of 0 NVLinks"),  # was a ZeroDivisionError
    (_pair("NV19"), "a bond of 19 NVLinks"),
    (_pair("NV999"), "a bond of 999 NVLinks"),
    (_pair("FOO"), "unknown relation 'FOO'"),
    (_pair("X"), "unknown relation 'X'"),
])
def test_bad_relations(rel, needle):
    with pytest.raises(InputError, match=needle):
        parse_topo_matrix(topo_text(rel), H100, "t.txt")


def test_diagonal_and_symmetry():
    rel = _rel(3)
    rel[1][1] = "SYS"
    with pytest.raises(InputError, match="GPU1 to itself is 'SYS', expected X"):
        parse_topo_matrix(topo_text(rel), H100)
    rel = _rel(3)
    rel[0][2] = "PIX"
    with pytest.raises(InputError, match="GPU0 to GPU2 is PIX but GPU2 to GPU0 is SYS"):
        parse_topo_matrix(topo_text(rel), H100)


def test_shape_errors():
    lines = topo_text(_rel(4)).split("\n")
    dup_col = "\n".join([lines[0].replace("GPU1", "GPU0", 1)] + lines[1:])
    dup_row = "\n".join(lines[:3] + [lines[2]] + lines[3:])
    for text, needle in ((dup_col, "column GPU0 appears twice"), (dup_row, "row GPU1 appears twice"),
                         ("\n".join(lines[:2] + lines[3:]), "rows missing for GPU1"),
                         ("\n".join(lines[1:]), "no `nvidia-smi topo -m` header")):
        with pytest.raises(InputError, match=needle):
            parse_topo_matrix(text, H100)


def test_nvlink_on_a_gpu_without_nvlink_is_a_contradiction():
    with pytest.raises(InputError, match="l40s has no NVLink; give the --gpu"):
        parse_topo_matrix(topo_text(_pair("NV4")), get_gpu("l40s"))
    pcie = parse_topo_matrix(topo_text(_rel(4, "NODE")), get_gpu("l40s"))  # PCIe only: fine
    assert pcie.gpus_per_node == 4


def test_leading_zeros_name_one_link_class():
    t = parse_topo_matrix(topo_text(_pair("NV04", n=2)), get_gpu("a100-80g-pcie"))
    assert t.paths[0][1] == ("nv4",) and t.links["nv4"].bytes_per_s == 100e9  # 4 x 25 GB/s


def test_a_thousand_gpu_matrix_is_refused_before_any_pair_is_read():
    """nvidia-smi prints one node; 1,000 GPUs took 13 s to read before it was bounded."""
    with pytest.raises(InputError, match=f"1000 GPUs in one matrix.*at most {MAX_GPUS}"):
        parse_topo_matrix(topo_text(_rel(1000)), H100)


def test_the_largest_matrix_read_is_whole_and_consistent():
    t = parse_topo_matrix(topo_text(_rel(MAX_GPUS, "NV2"), n_nics=MAX_GPUS), H100)
    assert t.gpus_per_node == MAX_GPUS and t.nics_per_gpu == 1.0
    assert all(t.paths[i][j] == (() if i == j else ("nv2",)) for i in (0, 77) for j in range(MAX_GPUS))
    assert len(topo_text(_rel(MAX_GPUS), n_nics=MAX_GPUS).encode()) < MAX_TEXT_BYTES


def test_file_size_is_bounded_and_unreadable_files_are_one_line(tmp_path, capsys):
    big = tmp_path / "big.txt"
    big.write_bytes(open(os.path.join(DATA, "h100_sxm_8gpu_nv18_8nic.txt"), "rb").read()
                    + b"#" * MAX_TEXT_BYTES)
    with pytest.raises(InputError, match="larger than 1 MiB"):
        read_topology_file(str(big), H100)
    junk = tmp_path / "junk.txt"
    junk.write_bytes(b"\xff\xfe\x00" * 100)
    for path in (str(tmp_path), str(junk), "/dev/null"):
        assert main(["comm", "--op", "all_reduce", "--bytes", "1MiB", "--gpus", "2",
                     "--topology-file", path]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_real_samples_still_read():
    for name, gpu in (("h100_sxm_8gpu_nv18_8nic.txt", "h100-sxm"), ("a100_sxm_8gpu_nv12.txt", "a100-80g-sxm"),
                      ("dgx1_v100_pix_phb_sys.txt", "l40s"), ("polaris_a100_4gpu_nv4_mesh.txt", "a100-80g-sxm"),
                      ("rtx4090_8gpu_phb_node_sys.txt", "rtx-4090")):
        assert read_topology_file(os.path.join(DATA, name), get_gpu(gpu)).gpus_per_node >= 4
