"""The CLI contract: --version, sub-apps, --dry-run, one-line errors."""

import json
import re

from conftest import run_lmlab

import lmlab


def test_version():
    r = run_lmlab("--version", check=True)
    assert r.stdout.strip() == f"lmlab {lmlab.__version__}"


# The CLI surface (docs/architecture.md, DESIGN "CLI contract"): each stage's sub-app and the commands it offers.
CLI_STAGES = {
    "data": {"corpus", "prepare"},
    "lm": {"train", "presets", "export-hf", "generate"},
    "acts": {"harvest", "verify", "info"},
    "glp": {"train", "presets", "eval", "delta-lm", "sweep", "probe", "steer", "sample", "export"},
    "glp steer": {"sweep"},
    "scaling": {"sweep", "fit", "predict", "allocate", "critical-batch", "slowdown"},
    "filter": {"classifier", "label", "sweep", "slowdown"},
    "eval": {"humaneval", "fewshot", "contamination"},
}


def _listed_commands(help_text: str) -> set[str]:
    """Command names in the "Commands" panel of a rich --help page (continuation lines start indented)."""
    names, inside = set(), False
    for line in help_text.splitlines():
        if "─ Commands " in line:
            inside = True
        elif inside and line.startswith("╰"):
            break
        elif inside and (m := re.match(r"│ (\S+)\s{2,}\S", line)):
            names.add(m.group(1))
    return names


def test_stage_subapps_listed():
    """`lmlab --help` lists every stage; each stage's --help lists its commands; each command's --help works."""
    from typer.testing import CliRunner

    from lmlab.cli import app

    r = run_lmlab("--help", env={"COLUMNS": "200"}, check=True)
    stages = {s for s in CLI_STAGES if " " not in s} | {"demo"}
    assert _listed_commands(r.stdout) >= stages, r.stdout
    runner = CliRunner()
    for stage, commands in CLI_STAGES.items():
        r = runner.invoke(app, [*stage.split(), "--help"], env={"COLUMNS": "200"})
        assert r.exit_code == 0 and _listed_commands(r.output) >= commands, (stage, r.output)
        for cmd in commands:
            r = runner.invoke(app, [*stage.split(), cmd, "--help"], env={"COLUMNS": "200"})
            assert r.exit_code == 0 and f"{stage} {cmd} [OPTIONS]" in r.output, (stage, cmd, r.output)


def test_one_stage_mounted_per_command():
    """A stage's command mounts only that stage (the others' CLI modules are not imported); a command line that
    names no stage (--help, a typo) mounts them all, so the typo's error still lists every command."""
    import subprocess
    import sys

    code = ("import sys; from lmlab.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('lmlab.') and m.endswith('.cli')))")
    out = subprocess.run([sys.executable, "-c", code, "eval", "humaneval", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == str(sorted(["lmlab.cli", "lmlab.evals.cli", "lmlab.evals.fewshot.cli",
                                                       "lmlab.evals.humaneval.cli"])), out
    r = run_lmlab("evall", "humaneval")
    assert r.returncode == 2 and "No such command 'evall'" in r.stderr, r.stderr


def test_presets_listed():
    r = run_lmlab("lm", "presets", check=True)
    assert {"tiny", "demo", "small", "gpt100m"} <= set(r.stdout.split())


def test_data_prepare_dry_run_and_bad_corpus(tmp_path):
    r = run_lmlab("data", "prepare", "--out", str(tmp_path / "d"), "--vocab-size", "1024", "--dry-run", check=True)
    assert json.loads(r.stdout)["vocab_size"] == 1024 and not (tmp_path / "d").exists()
    r = run_lmlab("data", "prepare", "--out", str(tmp_path / "d"), "--corpus", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "meta.json").exists()


def test_malformed_jsonl_corpus_is_one_line(tmp_path):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken\n{"text": "fine"}\n')
    r = run_lmlab("data", "prepare", "--out", str(tmp_path / "d"), "--corpus", str(bad), "--vocab-size", "300")
    assert r.returncode == 2 and "c.jsonl:2" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "meta.json").exists()


def test_unknown_model_spec_is_one_line(tmp_path):
    r = run_lmlab("lm", "generate", str(tmp_path / "no-such-model"))
    assert r.returncode == 2 and "no-such-model" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_demo_dry_run():
    r = run_lmlab("demo", "--quick", "--dry-run", check=True)
    assert '"max_steps": 60' in r.stdout


def test_cli_options_read_their_configs():
    """Every `config.option` of the CLI found its field, and the defaults read from source are the real ones."""
    import dataclasses

    import lmlab.cli  # noqa: F401  (defines every option)
    from lmlab import cli_options as config
    from lmlab.acts.harvester import HarvestConfig
    from lmlab.config import field_docs
    from lmlab.data.prepare import DataConfig
    from lmlab.evals.fewshot.evaluate import FewshotConfig
    from lmlab.evals.humaneval.sample import SampleConfig
    from lmlab.glp.probe import ProbeConfig
    from lmlab.glp.steering.sweep import SteerSweepConfig
    from lmlab.lm.train import TrainConfig
    from lmlab.scaling.sweep import SweepConfig

    assert config.UNRESOLVED == []
    for cls in (HarvestConfig, DataConfig, FewshotConfig, SampleConfig, ProbeConfig, SteerSweepConfig, TrainConfig,
                SweepConfig):
        src = config.source_fields(f"{cls.__module__}:{cls.__name__}")
        assert set(src) == {f.name for f in dataclasses.fields(cls)}
        for f in dataclasses.fields(cls):
            real = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if src[f.name].default is not dataclasses.MISSING:
                assert src[f.name].default == real, (cls.__name__, f.name)
        assert {k: v.doc for k, v in src.items() if v.doc} == field_docs(cls)


def test_options_not_given_take_the_config_defaults(tmp_path):
    from dataclasses import asdict

    from lmlab.acts.harvester import HarvestConfig

    r = run_lmlab("acts", "harvest", "--layer", "3", "--out", str(tmp_path / "s"), "--dry-run", check=True)
    assert json.loads(r.stdout) == asdict(HarvestConfig(layer=3, out=str(tmp_path / "s")))
    r = run_lmlab("acts", "harvest", "--help", env={"COLUMNS": "200"}, check=True)
    assert "Activations to store (split across ranks). [default: 100000]" in r.stdout


def test_explicit_option_beats_preset_and_set(tmp_path):
    from lmlab.config import get_preset
    from lmlab.lm import train  # noqa: F401  (registers the presets)

    out = str(tmp_path / "run")
    preset_steps = get_preset("lm", "tiny").max_steps
    assert json.loads(run_lmlab("lm", "train", "--out", out, "--dry-run", check=True).stdout)["max_steps"] == preset_steps
    r = run_lmlab("lm", "train", "--out", out, "--max-steps", "7", "--set", "max_steps=9", "--dry-run", check=True)
    assert json.loads(r.stdout)["max_steps"] == 7


def test_glp_presets_listed():
    from lmlab.config import presets
    from lmlab.glp import train  # noqa: F401  (registers the presets)

    assert run_lmlab("glp", "presets", check=True).stdout.split() == presets("glp")


def test_usage_error_is_clean():
    r = run_lmlab("acts", "harvest", "--out", "x")
    assert r.returncode == 2 and "Missing option '--layer'" in r.stderr and "Traceback" not in r.stderr
