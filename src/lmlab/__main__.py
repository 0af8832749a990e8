"""`python -m lmlab ...` (used by torchrun: `torchrun --nproc_per_node 2 -m lmlab lm train ...`)."""

from lmlab.cli import main

main()
