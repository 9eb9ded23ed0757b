import Lean.Elab.Tactic.Try
import LLMstep.Rank
import LLMstep.Ask

/-!
# Model suggestions inside core Lean's `try?`

Core's `try?` accepts user suggestion generators (`@[try_suggestion]`, lean4 PR #11149, in
`src/Lean/Elab/Tactic/Try.lean`): functions `MVarId → Try.Info → MetaM (Array (TSyntax `tactic))`
that it runs only after its own strategies have failed, and whose tactics it then checks and
shows itself. This file registers one that asks the llmstep server for the goal's suggestions.

It must never make `try?` worse: it has its own short timeout (`llmstep.tryTimeout`), an off
switch (`llmstep.trySuggestions`), and a server that is down, slow or wrong gives no suggestions
and no error. Only an edit (Lean's interrupt) goes through, as everywhere.
-/

namespace LLMstep

open Lean Meta Elab

/-- The model's tactics for `goal` as tactic syntax, for `try?` to check and show; empty when
`llmstep.trySuggestions` is off or the server does not answer well in `llmstep.tryTimeout`
seconds. Suggestions that do not parse as one tactic are left out. -/
def trySuggestionsFor (goal : MVarId) : MetaM (Array (TSyntax `tactic)) := do
  let opts ← getOptions
  unless llmstep.trySuggestions.get opts do return #[]
  let state := joinGoalTexts (← goalTexts [goal])
  let server := { (← Endpoint.fromOptions opts) with timeoutSeconds := llmstep.tryTimeout.get opts }
  match ← askServer server (requestFor opts state "") with
  | .error err =>
    trace[llmstep] "try?: no suggestions from the server ({err.message})"
    return #[]
  | .ok reply =>
    let env ← getEnv
    return (distinctTactics reply).filterMap fun s =>
      match Parser.runParserCategory env `tactic s.tactic with
      | .ok stx => some (⟨stx⟩ : TSyntax `tactic)
      | .error _ => none

/-- The generator `try?` runs: `trySuggestionsFor` the goal; `try?`'s collected info is not
needed. -/
@[try_suggestion]
def llmstepTryGenerator (goal : MVarId) (_info : Lean.Meta.Try.Info) :
    MetaM (Array (TSyntax `tactic)) :=
  trySuggestionsFor goal

end LLMstep
