"""``priorlib bench-gpu`` (issue 16's GPU measurement) runs here on a toy shape on the CPU: the same code
that ran on the lent GPU, every section and case, losses agreeing, and the page rendered from its JSON.
No timing is asserted; the published shapes build with the published parameter counts."""
import argparse
import json

import pytest
import torch

from priorlib.compendium import bench_gpu
from priorlib.compendium.performance import gpu_markdown


def _args(tmp_path, **kw):
    p = argparse.ArgumentParser()
    bench_gpu.add_arguments(p)
    a = p.parse_args(["--device", "cpu", "--shapes", "tiny", "--batch-sizes", "2", "--seq-len", "24",
                      "--rounds", "1", "--capture-texts", "32", "--out", str(tmp_path / "gpu.json")])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def test_every_section_runs_agrees_and_renders(tmp_path):
    assert bench_gpu.run(_args(tmp_path)) == 0
    g = json.loads((tmp_path / "gpu.json").read_text())
    assert g["errors"] == [] and g["environment"]["device"] == "cpu"
    [train], [deep], [cap] = g["train"], g["deep"], g["capture"]
    assert [r["case"] for r in train["rows"]] == ["PEFT bf16 + autocast", "priorlib bf16",
                                                  "priorlib bf16, compiled layers"]
    assert all(r["first_loss_gap"] <= 0.05 and len(r["times"]) == 1 for r in train["rows"])
    # a random model's first loss is near log(vocab): the cases train the same thing
    assert abs(train["rows"][0]["first_loss"] - torch.log(torch.tensor(512.0)).item()) < 1.0
    assert [r["case"] for r in deep["rows"]][0] == "full backprop" and all(r["max_loss_gap"] <= 0.05 for r in deep["rows"])
    assert len(cap["rows"]) == 3 and cap["texts"] == 32
    page = gpu_markdown(g)
    assert page.count("| tiny | 2 x 44 |") == 3 and page.count("| tiny | 2 x 24 |") == 3 and "| tiny | 32 |" in page
    assert "Every case ran" in page and "8x the rows" not in page  # one batch size: no scaling sentence


def test_a_failing_case_is_dropped_and_reported_and_the_reference_may_not_fail():
    calls = []

    def ok(i, l):
        calls.append("ok")
        return 1.0

    def bad(i, l):
        raise RuntimeError("compile broke")
    times, losses, failed = bench_gpu._interleave({"ref": ok, "compiled": bad}, [(0, 0)], 2, "cpu", warmup=1)
    assert list(times) == ["ref"] and len(times["ref"]) == 2 and failed == {"compiled": "RuntimeError: compile broke"}
    with pytest.raises(RuntimeError, match="compile broke"):
        bench_gpu._interleave({"ref": bad, "other": ok}, [(0, 0)], 1, "cpu")


def test_published_shapes_have_the_published_sizes():
    from transformers import LlamaConfig, LlamaForCausalLM
    for shape, n in (("smollm2-135m", 134.5e6), ("llama-3.2-1b", 1235.8e6)):
        with torch.device("meta"):
            m = LlamaForCausalLM(LlamaConfig(**bench_gpu.SHAPES[shape]))
        assert sum(p.numel() for p in m.parameters()) == pytest.approx(n, rel=1e-3)
    with pytest.raises(ValueError, match="no shape 'gpt-5'"):
        bench_gpu.random_model("gpt-5", "cpu")


def test_from_refuses_a_file_that_is_not_its_output(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"train": []}))
    with pytest.raises(ValueError, match="is not priorlib bench-gpu output"):
        bench_gpu.run(_args(tmp_path, from_=str(bad)))
    with pytest.raises(ValueError, match="no results file"):
        bench_gpu.run(_args(tmp_path, from_=str(tmp_path / "missing.json")))


def test_the_committed_gpu_figures_render_on_the_page():
    from priorlib.compendium.paths import repo_root
    g = json.loads((repo_root() / "benchmarks" / "gpu.json").read_text())
    page = gpu_markdown(g)
    assert g["environment"]["card"] in page and page.count("| llama-3.2-1b |") == 6 + 6 + 3
    text = (repo_root() / "book" / "performance.md").read_text()
    assert page in text  # the page shows the committed figures, not older ones
