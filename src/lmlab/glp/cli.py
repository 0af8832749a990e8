"""`lmlab glp ...`: train generative meta-models of activations (GLP), evaluate them (held-out loss, FD,
classifier accuracy, ΔLM), sweep the depth family, steer with on-manifold post-processing, probe meta-neurons."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.cli_options import check_number, option, parse_list, parse_log

app = typer.Typer(no_args_is_help=True)
# option defaults and help live in the configs and function signatures below (read without importing torch)
_EVAL, _DLM, _SWEEP = "lmlab.glp.evaluate:evaluate", "lmlab.glp.evaluate:delta_lm", "lmlab.glp.sweep:sweep"
_P = "lmlab.glp.probe:ProbeConfig"
_ONCE, _SS = "lmlab.glp.steering.sweep:steer_once", "lmlab.glp.steering.sweep:SteerSweepConfig"
_SAMPLE, _TRAIN = "lmlab.glp.evaluate:SampleConfig", "lmlab.glp.train:GLPTrainConfig"
_GLP_HELP = "GLP: an lmlab run directory, an official checkpoint folder or a hub id (g-luo/...)."


def _say_glp(res: dict) -> dict:
    """Print which GLP a command used (its results' `glp_info`, load.GLPInfo.describe) on stderr."""
    import sys

    if res.get("glp_info"):
        print(res["glp_info"], file=sys.stderr)
    return res


@app.command("train")
def train_cmd(
    store: Path = typer.Option(..., help="Activation store (lmlab acts harvest)."),
    out: Path = typer.Option(..., help="Run directory."),
    preset: str = typer.Option("tiny", help="Preset name; `lmlab glp presets` lists them."),
    set_: list[str] = typer.Option([], "--set", help="Override any field: --set lr=1e-3 --set net.n_layers=6."),
    context: int = typer.Option(None, "--context", metavar="K",
                                help="Sequence-aware prior: the denoiser also attends to the previous K clean "
                                "activations of the same document (sets net.context; 0 = single-token prior)."),
    log: list[str] = option(_TRAIN, "log", "--log", note="Repeatable or comma-separated.", shown="none"),
    resume: bool = typer.Option(False, help="Continue exactly from OUT/ckpt."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train a GLP denoiser on a store (torchrun-aware: `torchrun --nproc_per_node 2 -m lmlab glp train ...`)."""
    import json

    from lmlab.acts.store import ActivationStore
    from lmlab.config import apply_overrides, get_preset, print_dry_run, set_fields
    from lmlab.glp import train as T

    ctx = [] if context is None else [f"net.context={check_number(context, '--context', minimum=0)}"]
    cfg = apply_overrides(get_preset("glp", preset), [f"store={json.dumps(str(store))}", *ctx, *set_])
    # the denoiser's widths follow the store's (d_in = its d; the paper's family: d_model 2d, d_mlp 4d)
    cfg = set_fields(T.resolve_shape(cfg, ActivationStore.open(store).d_model), {"log": parse_log(log)})
    if dry_run:
        print_dry_run(cfg, f"lmlab glp train --preset {preset}")
        return
    summary = T.train_glp(cfg, out, resume=resume, progress=progress)
    if summary:
        print(json.dumps(summary))


@app.command("presets")
def presets_cmd() -> None:
    """List the GLP training presets (for --preset of train and sweep), one name per line."""
    from lmlab.config import presets
    from lmlab.glp import train  # noqa: F401  (registers the presets)

    print("\n".join(presets("glp")))


@app.command("eval")
def eval_cmd(
    glp: str = typer.Option(..., "--glp", help=_GLP_HELP),
    store: Path = typer.Option(None, help="Activation store of the GLP's model and layer (held-out documents are "
                               "used; default: a run's own store)."),
    n: int = option(_EVAL, "n", help="Samples and held-out real activations compared."),
    steps: str = option(_EVAL, "steps", help="Comma-separated Euler step counts to sample with."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """Held-out diffusion loss, FD and classifier two-sample accuracy vs the floor and a Gaussian baseline."""
    import json

    from lmlab.config import given
    from lmlab.glp.evaluate import evaluate

    steps_ = parse_list(steps, "--steps", int, minimum=1, example="8,32")
    out = _say_glp(evaluate(glp, store, **given(n=check_number(n, "--n", minimum=2), steps=steps_ and tuple(steps_))))
    print(json.dumps(out) if json_ else json.dumps(out, indent=2))


@app.command("delta-lm")
def delta_lm_cmd(
    glp: str = typer.Option(..., "--glp", help=_GLP_HELP),
    store: Path = typer.Option(None, help="Activation store of the GLP's model and layer (gives model, layer, "
                               "stats; default: a run's own store)."),
    n_docs: int = option(_DLM, "n_docs", help="Held-out documents (corpus val split)."),
    seq_len: int = option(_DLM, "seq_len", help="Tokens per document."),
    sigma_start: float = option(_DLM, "sigma_start", help="Noise level the reconstructions start from."),
) -> None:
    """ΔLM: LM loss increase when layer-L residuals are replaced by GLP / Gaussian-prior / mean reconstructions."""
    import json

    from lmlab.config import given
    from lmlab.glp.evaluate import delta_lm
    from lmlab.glp.load import glp_context

    check_number(n_docs, "--n-docs", minimum=1), check_number(seq_len, "--seq-len", minimum=2)
    check_number(sigma_start, "--sigma-start", minimum=0, maximum=1, min_open=True)
    g, st = glp_context(glp, store)  # a GLP that does not fit the store fails here, before the LM loads
    res = delta_lm(g, st.path, **given(n_docs=n_docs, seq_len=seq_len, sigma_start=sigma_start))
    print(json.dumps(_say_glp({"glp_info": g.info.describe(), **res})))


@app.command("sweep")
def sweep_cmd(
    store: Path = typer.Option(..., help="Activation store."),
    out: Path = typer.Option(..., help="Sweep directory: d<k>/ runs, runs.csv, scaling_fit.json/png."),
    depths: str = typer.Option("1,2,3", help="Comma-separated denoiser depths."),
    preset: str = option(_SWEEP, "base_preset", "--preset",
                         help="Base preset (depth is overridden); `lmlab glp presets` lists them."),
    set_: list[str] = typer.Option([], "--set", help="Overrides for every run, e.g. --set max_steps=500."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train the depth family (resumable) and fit held-out loss vs compute, L(C) = E + A C^-alpha."""
    import json

    from lmlab.config import given
    from lmlab.glp.sweep import sweep

    ds = parse_list(depths, "--depths", int, minimum=1, example="1,2,3")
    print(json.dumps(sweep(str(store), out, ds, overrides=list(set_),
                           progress=progress, **given(base_preset=preset))))


@app.command("sample")
def sample_cmd(
    glp: str = typer.Option(..., "--glp", help=_GLP_HELP),
    out: Path = typer.Option(..., help="Output .safetensors file (key `activations`, raw space)."),
    n: int = option(_SAMPLE, "n"),
    steps: int = option(_SAMPLE, "steps"),
    seed: int = option(_SAMPLE, "seed"),
    store: Path = option(_SAMPLE, "store"),
    layer: int = option(_SAMPLE, "layer"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
) -> None:
    """Sample raw activations from noise (Euler on the paper's grid) to a safetensors file; with --store, FD and
    classifier accuracy against its held-out rows. Prints one JSON object."""
    import json

    from lmlab.config import given, print_dry_run
    from lmlab.glp.evaluate import SampleConfig, sample

    check_number(n, "--n", minimum=1), check_number(steps, "--steps", minimum=1)
    cfg = SampleConfig(**given(glp=glp, n=n, steps=steps, seed=seed, store=store and str(store), layer=layer))
    if dry_run:
        print_dry_run(cfg, "lmlab glp sample")
        return
    print(json.dumps(_say_glp(sample(cfg, out))))


@app.command("export")
def export_cmd(
    glp: str = typer.Option(..., "--glp", help="GLP run directory (lmlab glp train); any GLP spec works."),
    out: Path = typer.Option(..., help="Folder to write the official layout to (config.yaml, "
                             "rep_statistics.pt, final.safetensors)."),
) -> None:
    """Write a GLP in the official g-luo/generative_latent_prior checkpoint layout (atomically)."""
    import json

    from lmlab.glp.interop import export_official

    print(json.dumps({"out": str(export_official(glp, out))}))


# ---- steering and probing ---------------------------------------------------------------------------------------
steer_app = typer.Typer(no_args_is_help=False, invoke_without_command=True)
app.add_typer(steer_app, name="steer")


@steer_app.callback()
def steer_cmd(
    ctx: typer.Context,
    glp: str = typer.Option(None, "--glp", help=_GLP_HELP + " A run's store gives model, layer, mean norm."),
    store: Path = option(_ONCE, "store", doc_from=_SS),
    concept: str = option(_ONCE, "concept", doc_from=_SS),
    vector: Path = option(_ONCE, "vector", doc_from=_SS),
    prompt: str = typer.Option(None, help="Text to continue."),
    r: float = option(_ONCE, "r", "--r", help="Relative strength: alpha = r * mean activation norm."),
    mode: str = option(_ONCE, "mode", help="plain | sdedit (paper) | x0 (1 NFE) | orth | delta | guided (edit-preserving)."),
    sigma_s: float = option(_ONCE, "sigma_s", doc_from=_SS, note="In (0, 1]."),
    steps: int = option(_ONCE, "steps", help="Euler steps (NFEs) from sigma_s to 0."),
    max_new_tokens: int = option(_ONCE, "max_new_tokens", help="Greedy tokens to generate."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """Steer one prompt (unsteered vs steered continuation); `lmlab glp steer sweep` for the Pareto sweep."""
    if ctx.invoked_subcommand is not None:
        return
    import json

    from lmlab.config import given
    from lmlab.errors import ConfigError
    from lmlab.glp.steering.sweep import steer_once

    if prompt is None:
        raise ConfigError("no --prompt given", "pass --prompt TEXT (or run `lmlab glp steer sweep`)")
    check_number(steps, "--steps", minimum=1), check_number(max_new_tokens, "--max-new-tokens", minimum=1)
    out = _say_glp(steer_once(prompt, glp, store and str(store), concept, vector and str(vector),
                              **given(r=r, mode=mode, sigma_s=sigma_s, steps=steps, max_new_tokens=max_new_tokens)))
    if json_:
        print(json.dumps(out))
        return
    for k in ("unsteered", out["mode"]):
        extra = f", retention {out[k]['retention']:.2f}" if "retention" in out[k] else ""
        print(f"[{k}] (NLL {out[k]['nll']:.2f}, concept {out[k]['concept']:.2f}{extra})\n{prompt}{out[k]['text']}\n")


@steer_app.command("sweep")
def steer_sweep_cmd(
    glp: str = typer.Option(..., "--glp", help=_GLP_HELP),
    out: Path = typer.Option(None, help="Output directory (default for a run directory: GLP_DIR/steer-CONCEPT); "
                             "rerun to resume."),
    store: Path = option(_SS, "store"),
    concept: str = option(_SS, "concept"),
    set_: list[str] = typer.Option([], "--set", help="Override SteerSweepConfig fields: --set n_prompts=100."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """r grid x {plain, sdedit, x0, delta}: concept score vs continuation NLL with bootstrap CIs, retention,
    tokens/s -> OUT/sweep.json, OUT/pareto.png."""
    import json

    from lmlab.config import apply_overrides, given, print_dry_run
    from lmlab.glp.steering.sweep import SteerSweepConfig, steer_sweep

    cfg = apply_overrides(SteerSweepConfig(**given(glp=glp, store=store and str(store), concept=concept)), list(set_))
    if dry_run:
        print_dry_run(cfg, "lmlab glp steer sweep")
        return
    if out is None and not (Path(glp) / "glp.safetensors").is_file():
        from lmlab.errors import ConfigError

        raise ConfigError("--glp is not a run directory, so there is no default output folder", "pass --out DIR")
    res = _say_glp(steer_sweep(cfg, out or Path(glp) / f"steer-{Path(cfg.concept or cfg.vector or 'vector').stem}"))
    print(json.dumps(res) if json_ else json.dumps({k: v for k, v in res.items() if k != "conditions"}))


@app.command("probe")
def probe_cmd(
    glp: str = typer.Option(None, "--glp", help=_GLP_HELP + " Required unless --list."),
    store: Path = option(_P, "store"),
    sae: Path = option(_P, "sae", "--sae"),
    tasks: str = option(_P, "tasks", note="Comma-separated; see --list."),
    csv: list[Path] = option(_P, "csv", "--csv", note="Repeatable."),
    sigmas: str = option(_P, "sigmas", note="Comma-separated, each in (0, 1]."),
    set_: list[str] = typer.Option([], "--set", help="Override ProbeConfig fields: --set docs_per_domain=200."),
    out: Path = typer.Option(None, help="Also write OUT/probe.json and OUT/probe.png."),
    list_: bool = typer.Option(False, "--list", help="Print the built-in task names and exit."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """1-D probing: best single meta-neuron vs raw residual dimension vs raw MLP neuron (vs SAE latent with
    --sae), per task and mean."""
    import json

    from lmlab.config import apply_overrides, given
    from lmlab.glp import probe as P

    if list_:
        print("\n".join(P.TASKS))
        return
    if glp is None:
        from lmlab.errors import ConfigError

        raise ConfigError("no --glp given", "pass --glp SPEC (a run directory, an official folder or a hub id)")
    cfg = P.ProbeConfig(**given(glp=glp, store=store and str(store), sae=sae and str(sae),
                                csv=csv and [str(c) for c in csv],
                                tasks=tasks.split(",") if tasks else None,
                                sigmas=parse_list(sigmas, "--sigmas", float, minimum=0, maximum=1, min_open=True)))
    cfg = apply_overrides(cfg, list(set_))
    res = _say_glp(P.probe(cfg))
    if out is not None:
        from lmlab.io import write_json

        write_json(out / "probe.json", res)
        P.probe_plot(res, out / "probe.png")
    if json_:
        print(json.dumps(res))
    else:
        for k, v in res["mean"].items():
            print(f"{k:>22}: {v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]")
