"""What a wheel install gets: the accelerate configs ship inside the package and the launcher
finds its default one with importlib.resources (not a path relative to a source checkout)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("cpu", "ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3")


def test_wheel_ships_the_accelerate_configs_and_the_launcher_finds_them(tmp_path):
    # build from a copy, so that the build leaves nothing in the checkout
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy(REPO / name, tree / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "-w", str(tmp_path / "w"), "--no-deps",
                        "--no-build-isolation", "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp_path / "w").glob("rung-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for cfg in CONFIGS:
            assert f"rung/tune/train/accelerate/{cfg}.yaml" in names
        assert "rung/tune/train/launcher.py" in names
        site = tmp_path / "site"  # a pure-python wheel installed = its files in site-packages
        z.extractall(site)

    code = ("import json, rung\n"
            "from pathlib import Path\n"
            "from rung.tune.train import launcher\n"
            "with launcher.config_file() as cfg, launcher.config_file('fsdp') as fsdp:\n"
            "    print(json.dumps({'rung': rung.__file__, 'cfg': str(cfg), 'fsdp': str(fsdp),\n"
            "                      'shipped': launcher.shipped_configs(),\n"
            "                      'cmd': launcher.launch_command(Path('job.json'), cfg)}))\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert Path(out["rung"]).is_relative_to(site)  # the installed copy, not the checkout
    assert Path(out["cfg"]) == site / "rung" / "tune" / "train" / "accelerate" / "cpu.yaml"
    assert Path(out["cfg"]).is_file() and Path(out["fsdp"]).name == "fsdp.yaml"
    assert out["shipped"] == sorted(CONFIGS)
    assert out["cmd"][out["cmd"].index("--config_file") + 1] == out["cfg"]


def test_unknown_accelerate_config_names_the_shipped_ones(tmp_path):
    from rung.errors import TrainingError
    from rung.tune.train import launcher

    with pytest.raises(TrainingError, match=r"'fdsp'.*did you mean 'fsdp'.*shipped: cpu, ddp"):
        with launcher.config_file("fdsp"):
            pass
    own = tmp_path / "mine.yaml"
    own.write_text("distributed_type: 'NO'\n")
    with launcher.config_file(own) as p:
        assert p == own


def test_progress_events_round_trip():
    from rung.tune.train import launcher
    from rung.tune.train.trainer import TrainProgress

    p = TrainProgress("step", 3, 10, loss=1.5, tokens_per_s=99.0, last_eval={"task_success": 0.5, "step": 2})
    lines = ["accelerate says hi", launcher.encode(launcher.progress_event(p)),
             launcher.encode(launcher.error_event("boom"))]
    events = list(launcher.read_events(lines))
    assert launcher.to_progress(events[0]) == p
    assert events[1] == {"event": "error", "message": "boom"}
