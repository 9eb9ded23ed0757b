import Lean

/-!
# Checking one suggestion

`checkCandidate` runs one suggested tactic on the current goals and reports `proofDone`, `valid`
(with the goals left) or `invalid` (with the reason), then puts the proof state back exactly as it
was, info trees and messages included.

The run is strict: no error recovery, errors are not turned into `sorry`, the candidate gets an
empty message log of its own and its own heartbeat budget, and a heartbeat timeout counts as a
failure rather than aborting the command. Interrupts are never caught. Ranking the results and
showing them is `LLMstep.Tactic`'s job.
-/

namespace LLMstep

open Lean Elab Tactic

/-- What running one suggested tactic showed. -/
inductive CheckResult where
  /-- It closes every goal, with a proof free of `sorry`. -/
  | proofDone
  /-- It runs without error and leaves these goals, pretty-printed like the infoview. -/
  | valid (goals : List String)
  /-- It does not parse, throws, logs an error, runs out of heartbeats, or proves with `sorry`. -/
  | invalid (reason : String)
  deriving Inhabited

/-- One line for the `trace.llmstep` log. -/
def CheckResult.describe : CheckResult → String
  | .proofDone => "closes the goals"
  | .valid goals => s!"valid, leaves {goals.length} goal(s)"
  | .invalid reason => s!"invalid: {reason}"

/-- Each goal as the infoview shows it (`Meta.ppGoal`, with its `case` tag). -/
def goalTexts (goals : List MVarId) : MetaM (List String) :=
  goals.mapM fun g => do return toString (← Lean.Meta.ppGoal g)

/-- The goals as one text, separated by blank lines: the `tactic_state` sent to the server. -/
def joinGoalTexts (goals : List String) : String :=
  "\n\n".intercalate goals

/-- The text of the first error in the current message log, if there is one. -/
private def firstError? : TacticM (Option String) := do
  let log := (← getThe Core.State).messages
  unless log.hasErrors do return none
  for msg in log.toList do
    if msg.severity matches .error then
      return some (← msg.data.toString)
  return some "it logged an error"

/-- Runs `stx` strictly and classifies the outcome; the caller restores the state. -/
private def runStrictly (stx : Syntax) (maxHeartbeats : Nat) : TacticM CheckResult := do
  let goalsBefore ← getUnsolvedGoals
  -- An empty log of its own: errors logged earlier in the same command must not count against
  -- this candidate. The caller's `restore` brings the old log back.
  modifyThe Core.State fun st => { st with messages := {} }
  -- Core stores heartbeats in units, the option counts thousands (like `maxHeartbeats`).
  withTheReader Core.Context (fun ctx => { ctx with maxHeartbeats := maxHeartbeats * 1000 }) do
    withCurrHeartbeats do
      Term.withoutErrToSorry <| withoutRecover <| evalTactic stx
  if let some err ← firstError? then
    return .invalid err
  -- Models like to propose `sorry` and `admit`; a proof that uses it is not a proof.
  for goal in goalsBefore do
    if (← instantiateMVars (.mvar goal)).hasSorry then
      return .invalid "the proof uses `sorry`"
  let goalsAfter ← getUnsolvedGoals
  if goalsAfter.isEmpty then
    return .proofDone
  return .valid (← goalTexts goalsAfter)

/-- Classifies an exception thrown by the candidate (interrupts never get here). -/
private def classifyException (maxHeartbeats : Nat) (ex : Exception) : TacticM CheckResult := do
  -- Some tactics log an error and then abort; the logged error is the informative one.
  if let some err ← firstError? then
    return .invalid err
  if ex.isMaxHeartbeat then
    return .invalid s!"ran out of heartbeats (llmstep.maxHeartbeats is {maxHeartbeats})"
  return .invalid (← ex.toMessageData.toString)

/-- Runs the tactic `tac` (a string from the model) on the current goals and reports what it did.
The proof state, the message log and the info trees are restored afterwards, whatever happened:
the text was parsed from a string, so its messages and info would point at the wrong place.

* `maxHeartbeats`: the budget for this one tactic, in thousands; `0` means no limit. -/
def checkCandidate (tac : String) (maxHeartbeats : Nat) : TacticM CheckResult := do
  match Parser.runParserCategory (← getEnv) `tactic tac with
  | .error err => return .invalid s!"does not parse as one tactic: {err}"
  | .ok stx =>
    let saved ← Tactic.saveState
    -- `tryCatchRuntimeEx` also catches heartbeat timeouts (plain `try` does not), rethrows
    -- interrupts itself, and does not backtrack: hence the unconditional restore below.
    let result ← tryCatchRuntimeEx (runStrictly stx maxHeartbeats)
      (classifyException maxHeartbeats)
    saved.restore (restoreInfo := true)
    return result

end LLMstep
