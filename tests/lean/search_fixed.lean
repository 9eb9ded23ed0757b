import LLMstep

/-!
# `llmstep_search` on fixed suggestions

`LLMstep.searchWith` takes its suggestions from a function, so these tests run the real search,
checking, de-duplication and display on a fixed table instead of a server.
`search_with_table "fragment", "tactic", …` suggests, for a state, the tactic of every pair whose
fragment the state contains. Run with `lake env lean tests/lean/search_fixed.lean`.
-/

open Lean Elab Tactic in
/-- Test-only: `llmstep_search` with suggestions from a table of (goal fragment, tactic) pairs. -/
elab "search_with_table " items:str,* : tactic => do
  let xs := items.getElems.map (·.getString)
  let table := (List.range (xs.size / 2)).map fun i => (xs[2 * i]!, xs[2 * i + 1]!)
  let suggest (state : String) : TacticM (Array LLMstep.ScoredTactic) :=
    pure <| (table.filter fun (fragment, _) => (state.splitOn fragment).length > 1).toArray.map
      fun (_, tactic) => ({ tactic, score := 0 - 1 } : LLMstep.ScoredTactic)
  let outcome ← LLMstep.searchWith suggest (LLMstep.SearchLimits.fromOptions (← getOptions))
  LLMstep.showOutcome (← getRef) outcome

/-! ## A proof that needs both of its steps is found, and laid out one step per line -/

/--
info: llmstep_search found a proof in 2 step(s), after 2 expansions:
  [apply] 🎉 rw [Nat.add_zero]
  exact h
-/
#guard_msgs (whitespace := lax) in
example (a b : Nat) (h : a ≤ b) : a + 0 ≤ b := by
  search_with_table "a + 0", "rw [Nat.add_zero]", "⊢ a ≤ b", "exact h"
  exact h

/-! ## The expansion budget stops it, and the deepest partial proof is offered -/

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
  search_with_table "a + 0", "rw [Nat.add_zero]", "⊢ a ≤ b", "exact h"
  exact h

/-! ## A state seen before is not added again, so a suggestion that changes nothing ends it -/

/-- info: llmstep_search: no proof found after 1 expansion; no suggestion led to a new state. -/
#guard_msgs in
example (m : Nat) : m * 1 = m := by
  search_with_table "m * 1", "skip", "m * 1", "exact foo"
  exact Nat.mul_one m

/-! ## Through several goals

Each step acts on the goal list the previous one left, as in a written proof; the search leaves
the proof state as it found it, so the next line still has the goal to close. -/

/--
info: llmstep_search found a proof in 3 step(s), after 3 expansions:
  [apply] 🎉 constructor
  exact hp
  exact hq
-/
#guard_msgs (whitespace := lax) in
example (p q : Prop) (hp : p) (hq : q) : p ∧ q := by
  search_with_table "⊢ p ∧ q", "constructor", "⊢ p", "exact hp", "⊢ q", "exact hq"
  exact ⟨hp, hq⟩
