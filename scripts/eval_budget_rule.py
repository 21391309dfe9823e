"""Measure the client's budget rule on the held-out prompts of the bundled router.

    python scripts/eval_budget_rule.py

Prints, at λ = 0, the share of the gap between the best single model and the
oracle that the client's choice closes with no budget (the policy alone) and
with budgets of 1, 0.003 and 0.001 USD, using the router's own quality and
output-token predictions as the client does. Exploration is off.
"""

import numpy as np
import onnxruntime as ort
from trainer.matrix import load_matrix
from trainer.pretrain import matrix_features, split_by_id, pick_best_single
from smartllm._sampling import choice_distribution
m = load_matrix(); m = m.select_models(m.default_pool)
X = matrix_features(m); sp = split_by_id(m.ids)
te = sp.test[~np.isnan(m.quality[sp.test]).any(1)]
s = ort.InferenceSession("smartllm/assets/router.onnx")
pin = np.array([m.prices[n]["input_cost_per_token"] for n in m.models]); pout = np.array([m.prices[n]["output_cost_per_token"] for n in m.models])
Q, C = m.quality[te], m.cost[te]
best = pick_best_single(m.quality[sp.train], m.cost[sp.train], [0])
lo, q, t = s.run(None, {"embedding": X[te], "lam": np.zeros(len(te), np.float32)})
pc = m.input_tokens[te][:,None]*pin + t*pout
U = Q; r = np.arange(len(te)); orc = U.max(1).mean(); b = U[:, best[0]].mean()
for budget in [None, 1.0, 0.003, 0.001]:
    ch = np.array([choice_distribution(lo[i], q[i], pc[i], np.ones(6,bool), budget, exploration=0.0).policy.argmax() for i in range(len(te))])
    print(budget, f"gap closed at λ=0: {(U[r, ch].mean() - b)/(orc-b):+.3f}", f"mean cost {C[r,ch].mean():.5f}", f"quality {Q[r,ch].mean():.3f}")
