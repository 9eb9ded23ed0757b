import LLMstep

/-!
# Against a real `llmstep serve`

tests/test_lean.py trains a tiny model on `tests/lean/pairs.jsonl` (each goal below, exactly as
`Meta.ppGoal` prints it, paired with the tactic the model should answer), starts
`llmstep serve` on a free port, and passes its address in `LLMSTEP_HOST`/`LLMSTEP_PORT`, which the
default `llmstep.url` reads. One suggestion per call keeps the answers deterministic.
Run by hand: `LLMSTEP_PORT=<port> lake env lean tests/lean/e2e_server.lean`.
-/

/-! ## The model's tactic closes the goal: shown first and marked -/

/--
info: Try these:
  [apply] 🎉 rfl
-/
#guard_msgs (whitespace := lax) in
set_option llmstep.numSuggestions 1 in
example (n : Nat) : n + 0 = n := by
  llmstep
  rfl

/-! ## The prefix reaches the server, and the answer starts with it -/

/--
info: Try these:
  [apply] 🎉 exact Nat.succ_le_succ h
-/
#guard_msgs (whitespace := lax) in
set_option llmstep.numSuggestions 1 in
example (a b : Nat) (h : a ≤ b) : a + 1 ≤ b + 1 := by
  llmstep "exact"
  exact Nat.succ_le_succ h

/-! ## The model's tactic does not typecheck: nothing is shown but the count -/

/--
info: llmstep: the server suggested 1 tactic; the one checked fails, uses `sorry`, or changes
nothing. `set_option trace.llmstep true` shows why.
-/
#guard_msgs in
set_option llmstep.numSuggestions 1 in
example (m : Nat) : m * 1 = m := by
  llmstep
  exact Nat.mul_one m
