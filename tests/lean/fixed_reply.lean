import LLMstep

/-!
# `llmstep` on a fixed server answer

These tests feed a fixed answer straight into `LLMstep.suggestFromReply`, the core of the tactic,
so they need no server: checking, ranking and display are all real.

The "Try these" blocks use `(whitespace := lax)`: the message's indentation belongs to Lean's
Try-this widget and changed between releases; the words and their order are what is pinned.
Run with `lake env lean tests/lean/fixed_reply.lean` (tests/test_lean.py does).
-/

open Lean Elab Tactic in
/-- `llmstep_reply "t₁", "t₂", …` acts as `llmstep` would if the server had answered with these
tactics, best first. Test-only. -/
elab "llmstep_reply " tactics:str,* : tactic => do
  let mut reply : Array LLMstep.ScoredTactic := #[]
  for t in tactics.getElems do
    reply := reply.push { tactic := t.getString, score := 0 - reply.size.toFloat }
  LLMstep.suggestFromReply (← getRef) (← LLMstep.stateForServer) reply

/-! ## A goal closer comes first and is marked; a failing suggestion is hidden -/

/--
info: Try these:
  [apply] 🎉 rfl
-/
#guard_msgs (whitespace := lax) in
example (n : Nat) : n + 0 = n := by
  llmstep_reply "exact foo", "rfl"
  rfl

/-! ## Ranking, duplicates and suggestions that change nothing

Expected: the closer first although the server ranked it last; then the suggestion leaving one
goal; then the one leaving two. `exact hp` fails, `skip` changes nothing, `apply And.intro` leaves
the same goals as `constructor` (which the server ranked higher), and the repeated `constructor`
is dropped before checking. -/

/--
info: Try these:
  [apply] 🎉 exact ⟨hp, hq⟩
  [apply] have h : q := hq
  Remaining goals:
  p q : Prop
  hp : p
  hq h : q
  ⊢ p ∧ q
  [apply] constructor
  Remaining goals:
  case left
  p q : Prop
  hp : p
  hq : q
  ⊢ p

  case right
  p q : Prop
  hp : p
  hq : q
  ⊢ q
-/
#guard_msgs (whitespace := lax) in
set_option llmstep.numSuggestions 8 in
example (p q : Prop) (hp : p) (hq : q) : p ∧ q := by
  llmstep_reply "exact hp", "constructor", "skip", "have h : q := hq", "constructor",
    "apply And.intro", "exact ⟨hp, hq⟩"
  exact ⟨hp, hq⟩

/-! ## Nothing survives: `sorry` and `admit` are not proofs, unparsable text and no-ops go too -/

/--
info: llmstep: the server suggested 5 tactics; none of them checked (each failed, used `sorry`,
or changed nothing). `set_option trace.llmstep true` shows why.
-/
#guard_msgs in
example (n : Nat) : n + 0 = n := by
  llmstep_reply "exact foo", "sorry", "skip", "skip", "exact (", "admit"
  rfl

/-! ## `llmstep.numSuggestions` caps how many are checked

Only the first two are checked here, so the closer in third place is never seen. -/

/--
info: llmstep: the server suggested 2 tactics; none of them checked (each failed, used `sorry`,
or changed nothing). `set_option trace.llmstep true` shows why.
-/
#guard_msgs in
set_option llmstep.numSuggestions 2 in
example (n : Nat) : n + 0 = n := by
  llmstep_reply "exact foo", "skip", "rfl"
  rfl

/-! ## With `llmstep.check` off, the answer is shown as it came -/

/--
info: Try these:
  [apply] exact foo
  [apply] rfl
-/
#guard_msgs (whitespace := lax) in
set_option llmstep.check false in
example (n : Nat) : n + 0 = n := by
  llmstep_reply "exact foo", "rfl"
  rfl

/-! ## An empty answer -/

/-- info: llmstep: the server returned no suggestions for this goal. Try another prefix. -/
#guard_msgs in
example (n : Nat) : n + 0 = n := by
  llmstep_reply
  rfl

/-! ## No goals -/

/-- error: llmstep: no goals are left, so there is nothing to suggest. -/
#guard_msgs in
example : True := by
  trivial
  llmstep_reply "rfl"

/-! ## The proof state is left as it was

After `llmstep_reply` shows a closer, the goal is still open: the next tactic closes it. -/

/--
info: Try these:
  [apply] 🎉 exact hp
-/
#guard_msgs (whitespace := lax) in
example (p : Prop) (hp : p) : p := by
  llmstep_reply "exact hp"
  exact hp
