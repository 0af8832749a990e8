"""On-manifold steering with a GLP (Luo et al. 2026 §4a; glp.md §4a), judged without an API judge.

    directions  concept sets, pooled activations, DiffMean and user vectors
    modes       the last-position intervention and its post-processing modes (plain, sdedit, x0, orth, delta)
    sweep       generation, continuation metrics, the (mode x r) Pareto sweep, one-prompt steering
"""

from lmlab.glp.steering.directions import (
    CONCEPT_DIR,
    CORPUS_CONCEPTS,
    FILE_CONCEPTS,
    Direction,
    check_direction_args,
    concept_names,
    concept_texts,
    diffmean,
    find_direction,
    keywords,
    load_vector,
    pooled_acts,
)
from lmlab.glp.steering.modes import (
    MODES,
    PAPER_SIGMA_S,
    POSTPROCESS,
    Steer,
    check_mode,
    delta_edit,
    denoise,
    postprocess,
    project_out,
    retention,
    steer_last_position,
    steer_sigmas,
)
from lmlab.glp.steering.sweep import (
    SteerSweepConfig,
    continuation_metrics,
    generate,
    load_prompts,
    pareto_plot,
    run_condition,
    steer_once,
    steer_sweep,
    summarise,
)

__all__ = [
    "CONCEPT_DIR",
    "CORPUS_CONCEPTS",
    "FILE_CONCEPTS",
    "MODES",
    "PAPER_SIGMA_S",
    "POSTPROCESS",
    "Direction",
    "Steer",
    "SteerSweepConfig",
    "check_direction_args",
    "check_mode",
    "concept_names",
    "concept_texts",
    "continuation_metrics",
    "delta_edit",
    "denoise",
    "diffmean",
    "find_direction",
    "generate",
    "keywords",
    "load_prompts",
    "load_vector",
    "pareto_plot",
    "pooled_acts",
    "postprocess",
    "project_out",
    "retention",
    "run_condition",
    "steer_last_position",
    "steer_once",
    "steer_sigmas",
    "steer_sweep",
    "summarise",
]
