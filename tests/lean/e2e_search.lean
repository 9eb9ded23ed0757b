import LLMstep

/-!
# `llmstep_search` and `try?` against a real `llmstep serve`

The tiny model of `tests/test_lean.py` is trained on `tests/lean/pairs.jsonl`, which holds both
steps of the first proof below (`rw [Nat.add_zero]` on the first goal, `exact h` on the goal it
leaves): the search must ask the server twice and check both answers to find it. The server
decodes greedily, so each request gets the one answer the model memorised.
-/

/-! ## Both steps found, one request per expansion -/

/--
info: llmstep_search found a proof in 2 step(s), after 2 expansions:
  [apply] 🎉 rw [Nat.add_zero]
  exact h
-/
#guard_msgs (whitespace := lax) in
example (a b : Nat) (h : a ≤ b) : a + 0 ≤ b := by
  llmstep_search
  exact h

/-! ## Out of budget after one expansion: the partial proof to continue from -/

/--
info: llmstep_search: no proof found after 1 expansion; llmstep.searchMaxExpansions (1) reached.
The deepest partial proof, 1 step(s), to continue from:
  [apply] rw [Nat.add_zero]
  Remaining goals:
  a b : Nat
  h : a ≤ b
  ⊢ a ≤ b
-/
#guard_msgs (whitespace := lax) in
set_option llmstep.searchMaxExpansions 1 in
example (a b : Nat) (h : a ≤ b) : a + 0 ≤ b := by
  llmstep_search
  exact h

/-! ## A goal the model cannot prove: its one answer fails, and the search says so -/

/-- info: llmstep_search: no proof found after 1 expansion; no suggestion led to a new state. -/
#guard_msgs in
example (m : Nat) : m * 1 = m := by
  llmstep_search
  exact Nat.mul_one m

/-! ## `try?` asks the model once its own strategies fail

`secret` is opaque and `secret_spec` is known to no built-in strategy, and the goal needs it twice,
so no single lemma closes it; the model's answer does. -/

opaque secret : Nat → Nat
axiom secret_spec : ∀ n, secret (n + 1) = n

/--
info: Try this:
  [apply] rw [secret_spec, secret_spec]
-/
#guard_msgs (whitespace := lax) in
example : secret (secret 5) = 3 := by
  try?
