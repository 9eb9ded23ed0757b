import LLMstep

/-!
# Cancellation while the server says nothing

`tests/test_lean.py` listens on a loopback port and never answers: the kernel accepts curl's
connection, and nobody reads it. The port's URL comes in `LLMSTEP_SILENT_URL`. Needs `curl`.

Lean's test tools cannot edit a file in the middle of an elaboration, so the editor's
cancellation is tested in two halves: `LLMstep.postSuggest` stops curl when the `interrupted`
action it polls says so (here, on its third poll, long before the 30 s timeout), and
`LLMstep.interruptRequested`, the action the tactic passes, reads the cancel token that the
language server sets on an edit.
-/

open LLMstep in
/-- Posts to the silent server, asking to stop on the third poll; how the call ended. -/
def cancelledAfterThreePolls : IO String := do
  let url := (← IO.getEnv "LLMSTEP_SILENT_URL").getD "http://127.0.0.1:1"
  let polls ← IO.mkRef 0
  let interrupted : IO Bool := do
    polls.modify (· + 1)
    return (← polls.get) ≥ 3
  let request : Request := { tacticState := "⊢ True", tacticPrefix := "", numSamples := 1 }
  match ← postSuggest url 30 "" request interrupted with
  | .error .cancelled => return s!"cancelled on poll {← polls.get}"
  | .error err => return err.message
  | .ok _ => return "answered"

/-- info: "cancelled on poll 3" -/
#guard_msgs in
#eval cancelledAfterThreePolls

open Lean in
/-- What `interruptRequested` says before and after the cancel token is set. -/
def tokenSeen : CoreM (Bool × Bool) := do
  let token ← IO.CancelToken.new
  let check ← withReader ({ · with cancelTk? := some token }) LLMstep.interruptRequested
  let before ← check
  token.set
  return (before, ← check)

/-- info: (false, true) -/
#guard_msgs in
#eval tokenSeen
