# issue 13 check: the GLP trainer benchmark, refactored tree vs the commit before it (680ee75, checked out at
# OLD_CHECKOUT with `git worktree add OLD_CHECKOUT 680ee75`), alternating on an idle machine; uptime lines in the log.
cd .
for i in 1 2; do
uptime
.venv/bin/python bench/glp_train_throughput.py --out bench/results/issue13_glp_old_vs_new --name new$i --steps 4 --repeats 5
PYTHONPATH=OLD_CHECKOUT/src .venv/bin/python OLD_CHECKOUT/bench/glp_train_throughput.py --out bench/results/issue13_glp_old_vs_new --name old$i --steps 4 --repeats 5
done
uptime
