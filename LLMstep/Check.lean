import Lean

/-!
# Checking one suggestion

`checkCandidate` runs one suggested tactic on the current goals and reports `proofDone`, `valid`
(with the goals left) or `invalid` (with the reason), then puts the proof state back exactly as it
was: goals, metavariables, messages, info trees and traces. `runCandidate` also hands back the
state the tactic left, for `LLMstep.Search` to continue from.

The run is strict: no error recovery, errors are not turned into `sorry`, the candidate gets an
empty message log of its own and a heartbeat budget capped by what the enclosing declaration has
left, and a heartbeat timeout counts as a failure rather than aborting the command. Interrupts
are never caught. Ranking the results and showing them is `LLMstep.Tactic`'s job.
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

/-- The width goals are printed at. LeanDojo's traces, on which llmstep's models are trained,
print goals with `Format.pretty` at its default width of 120 columns, so a wide goal is wrapped
the same way here; the number is written down so that it is a choice, not an accident. -/
def goalWidth : Nat := 120

/-- Each goal as the infoview shows it (`Meta.ppGoal`, with its `case` tag), at `goalWidth`. -/
def goalTexts (goals : List MVarId) : MetaM (List String) :=
  goals.mapM fun g => do return (← Lean.Meta.ppGoal g).pretty goalWidth

/-- The goals as one text, separated by blank lines: the `tactic_state` sent to the server. -/
def joinGoalTexts (goals : List String) : String :=
  "\n\n".intercalate goals

/-- The heartbeat budget of one candidate, in Core's raw units, from the `llmstep.maxHeartbeats`
option (`optionThousands`, in thousands like `maxHeartbeats`) and the enclosing declaration's
limit (`declMax`, raw, `0` for none) and use so far (`declUsed`, raw).

Budgets compose by `min`: a candidate never gets more than the declaration has left, and `0`
means "what the declaration has left", never "unlimited" (unless the declaration itself is
unlimited). The result is never `0` when a limit applies, since Core reads `0` as "no limit": a
declaration with nothing left gives the candidate one heartbeat, so it fails at once. -/
def candidateBudget (optionThousands declMax declUsed : Nat) : Nat :=
  let own := optionThousands * 1000
  if declMax == 0 then own
  else
    let left := declMax - declUsed
    let capped := if own == 0 then left else min own left
    max 1 capped

/-- The text of the first error in the current message log, if there is one. -/
private def firstError? : TacticM (Option String) := do
  let log := (← getThe Core.State).messages
  unless log.hasErrors do return none
  for msg in log.toList do
    if msg.severity matches .error then
      return some (← msg.data.toString)
  return some "it logged an error"

/-- Runs `stx` strictly within `budget` raw heartbeats and classifies the outcome; the caller
restores the state. -/
private def runStrictly (stx : Syntax) (budget : Nat) : TacticM CheckResult := do
  let goalsBefore ← getUnsolvedGoals
  -- An empty log of its own: errors logged earlier in the same command must not count against
  -- this candidate. The caller's `restore` brings the old log back.
  modifyThe Core.State fun st => { st with messages := {} }
  withTheReader Core.Context (fun ctx => { ctx with maxHeartbeats := budget }) do
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
private def classifyException (optionThousands : Nat) (ex : Exception) : TacticM CheckResult := do
  -- Some tactics log an error and then abort; the logged error is the informative one.
  if let some err ← firstError? then
    return .invalid err
  if ex.isMaxHeartbeat then
    return .invalid s!"ran out of heartbeats (llmstep.maxHeartbeats is {optionThousands}, capped \
      by what the declaration had left)"
  return .invalid (← ex.toMessageData.toString)

/-- Whether the tactic worked: it closed the goals or left some without error. -/
def CheckResult.worked : CheckResult → Bool
  | .invalid _ => false
  | _ => true

/-- Runs the tactic `tac` (a string from the model) on the current goals and reports what it did,
and, when it worked and `keep` is set, the proof state it left, for a search to continue from.
The proof state, the message log, the info trees and the trace messages are put back afterwards,
whatever happened, an interrupt included (`finally`): the text was parsed from a string, so its
messages and info would point at the wrong place. The trace state needs its own restore, since
`Term.SavedState.restore` never backtracks traces.

* `optionThousands`: the `llmstep.maxHeartbeats` option, in thousands; the budget is that, capped
  by what the declaration has left (`candidateBudget`). -/
def runCandidate (tac : String) (optionThousands : Nat) (keep : Bool) :
    TacticM (CheckResult × Option Tactic.SavedState) := do
  match Parser.runParserCategory (← getEnv) `tactic tac with
  | .error err => return (.invalid s!"does not parse as one tactic: {err}", none)
  | .ok stx =>
    let ctx ← readThe Core.Context
    let budget := candidateBudget optionThousands ctx.maxHeartbeats
      ((← IO.getNumHeartbeats) - ctx.initHeartbeats)
    let saved ← Tactic.saveState
    let traces ← getTraceState
    try
      -- `tryCatchRuntimeEx` also catches heartbeat timeouts (plain `try` does not) and rethrows
      -- interrupts itself; it does not backtrack, which the `finally` below does.
      let result ← tryCatchRuntimeEx (runStrictly stx budget) (classifyException optionThousands)
      let after ← if keep && result.worked then some <$> Tactic.saveState else pure none
      return (result, after)
    finally
      saved.restore (restoreInfo := true)
      modifyTraceState fun _ => traces

/-- `runCandidate` without keeping the state: what `llmstep` shows. -/
def checkCandidate (tac : String) (optionThousands : Nat) : TacticM CheckResult := do
  return (← runCandidate tac optionThousands (keep := false)).1

end LLMstep
