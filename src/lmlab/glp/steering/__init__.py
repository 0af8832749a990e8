"""On-manifold steering with a GLP (Luo et al. 2026 §4a; glp.md §4a), judged without an API judge.

    directions  concept sets, pooled activations, DiffMean and user vectors
    modes       the intervention (last or all positions) and its post-processing modes (plain, sdedit, x0,
                orth, delta, guided)
    sweep       generation, continuation metrics, the (mode x r) Pareto sweep, one-prompt steering
    classifier  the held-out concept classifier (logistic probe on the unsteered model's activations)
    quality     degeneration measures (distinct-n, repetition, word_frac) and the one "fluent" rule
    frontier    matched-concept frontiers with paired bootstrap CIs (experiments/glp_steer_frontier.py)
"""

from lmlab.glp.steering.classifier import ConceptProbe, heldout_texts, train_concept_probe
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
from lmlab.glp.steering.frontier import frontier_interp, frontier_plot, matched_frontier
from lmlab.glp.steering.modes import (
    MODES,
    PAPER_SIGMA_S,
    POSITIONS,
    POSTPROCESS,
    Steer,
    check_mode,
    check_positions,
    delta_edit,
    denoise,
    guided_edit,
    paper_steps,
    postprocess,
    project_out,
    retention,
    steer_last_position,
    steer_positions,
    steer_sigmas,
)
from lmlab.glp.steering.quality import FLUENT_RULE, distinct_n, is_fluent, quality, repetition_rate
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
    "FLUENT_RULE",
    "POSITIONS",
    "ConceptProbe",
    "check_positions",
    "distinct_n",
    "frontier_interp",
    "frontier_plot",
    "guided_edit",
    "heldout_texts",
    "is_fluent",
    "matched_frontier",
    "paper_steps",
    "quality",
    "repetition_rate",
    "steer_positions",
    "train_concept_probe",
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
