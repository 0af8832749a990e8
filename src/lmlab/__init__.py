"""lmlab: a toolkit for the science of language models.

Stages live in sub-packages (data, lm, acts, glp, scaling, evals, report); `import lmlab` stays light —
heavy libraries (torch, transformers) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
