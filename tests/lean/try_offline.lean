import LLMstep

/-!
# The `try?` generator without a server

`try?` must work without a server as it does today: the generator gives no suggestions, and logs
nothing, when the server is down or the switch is off. Port 1 on the loopback interface never
serves llmstep, so curl's connection is refused at once. Needs `curl`.
-/

open Lean Meta in
/-- How many tactics the generator hands `try?` for a goal `True`. -/
def generatorCount : MetaM Nat := do
  let goal ← mkFreshExprMVar (some (mkConst ``True))
  return (← LLMstep.trySuggestionsFor goal.mvarId!).size

/-! ## Server down: nothing, and no message -/

/-- info: 0 -/
#guard_msgs in
set_option llmstep.url "http://127.0.0.1:1" in
#eval generatorCount

/-! ## Switched off: nothing, without asking -/

/-- info: 0 -/
#guard_msgs in
set_option llmstep.trySuggestions false in
set_option llmstep.url "http://127.0.0.1:1" in
#eval generatorCount
