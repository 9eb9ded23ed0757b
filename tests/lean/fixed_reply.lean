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
info: llmstep: the server suggested 6 tactics; none of the 5 checked works (each fails, uses
`sorry`, or changes nothing). `set_option trace.llmstep true` shows why.
-/
#guard_msgs in
example (n : Nat) : n + 0 = n := by
  llmstep_reply "exact foo", "sorry", "skip", "skip", "exact (", "admit"
  rfl

/-! ## `llmstep.numSuggestions` caps how many are checked

Only the first two are checked here, so the closer in third place is never seen. The message
counts what the server sent and what was checked. -/

/--
info: llmstep: the server suggested 3 tactics; none of the 2 checked works (each fails, uses
`sorry`, or changes nothing). `set_option trace.llmstep true` shows why.
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

/-! ## Every suggestion blank: told apart from no suggestions at all -/

/-- info: llmstep: the server suggested 2 tactics, all of them blank. Try another prefix. -/
#guard_msgs in
example (n : Nat) : n + 0 = n := by
  llmstep_reply " ", "\n"
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

/-! ## Traces of the checked tactics do not leak

Checking `simp` makes simp's rewrite trace fire; `Term.SavedState.restore` keeps traces, so
`checkCandidate` puts the trace state back itself. Only the suggestion is shown. -/

/--
info: Try these:
  [apply] 🎉 simp
-/
#guard_msgs (whitespace := lax) in
set_option trace.Meta.Tactic.simp.rewrite true in
example (n : Nat) : n + 0 = n := by
  llmstep_reply "simp"
  exact Nat.add_zero n

/-! ## A candidate's heartbeat budget is capped by what the declaration has left

`spin` never ends by itself: only a heartbeat limit stops it. With `llmstep.maxHeartbeats 0` the
candidate gets what the declaration has left; were `0` unlimited, as it once was, checking would
never end and this file would hang. Having spent the declaration's budget, the proof then times out
at its next step: `drop all` leaves that error out, and keeps llmstep's own message. -/

open Lean Elab Tactic in
/-- Test-only: spends 100 000 heartbeats per round, checking the limit, until it is stopped. -/
elab "spin" : tactic => do
  repeat
    IO.addHeartbeats 100000
    Core.checkMaxHeartbeats "spin"

/--
info: llmstep: the server suggested 1 tactic; the one checked fails, uses `sorry`, or changes
nothing. `set_option trace.llmstep true` shows why.
-/
#guard_msgs (info, drop all) in
set_option maxHeartbeats 5000 in
set_option llmstep.maxHeartbeats 0 in
example (n : Nat) : n + 0 = n := by
  llmstep_reply "spin"
  rfl

/-- The budget rule itself (raw heartbeats): the option in thousands, capped by what is left;
`0` is what is left; never `0` (Core's "no limit") while a limit applies. -/
def budgets : List Nat :=
  [LLMstep.candidateBudget 20 0 0,            -- no declaration limit: the option
   LLMstep.candidateBudget 0 0 0,             -- neither limits: unlimited
   LLMstep.candidateBudget 20 200000 0,       -- the option, well within what is left
   LLMstep.candidateBudget 20 200000 190000,  -- capped by what is left
   LLMstep.candidateBudget 0 200000 150000,   -- `0`: what is left
   LLMstep.candidateBudget 0 200000 200000]   -- nothing left: one heartbeat, so it fails at once

/-- info: [20000, 0, 20000, 10000, 50000, 1] -/
#guard_msgs in
#eval budgets

/-! ## Goals are printed at 120 columns, as in LeanDojo's traces

The target below is about 200 characters wide, so it is wrapped; no line is wider than 120. -/

open Lean Elab Tactic in
/-- Test-only: whether the state `llmstep` would send is wrapped (more lines than the one
hypothesis line and the target) with no line wider than 120 columns. -/
elab "state_is_wrapped_at_120" : tactic => do
  let lines := (← LLMstep.stateForServer).splitOn "\n"
  logInfo m!"{decide (lines.length > 2) && lines.all (·.length ≤ 120)}"

/-- info: true -/
#guard_msgs in
example (a b c d e f g h i j k l m : Nat) :
    a + b + c + d + e + f + g + h + i + j + k + l + m + a + b + c + d + e + f + g + h + i + j + k + l + m =
      m + l + k + j + i + h + g + f + e + d + c + b + a + m + l + k + j + i + h + g + f + e + d + c + b + a := by
  state_is_wrapped_at_120
  omega
