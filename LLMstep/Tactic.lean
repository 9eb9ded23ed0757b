import LLMstep.Options
import LLMstep.Rank
import LLMstep.Ask

/-!
# The `llmstep` tactic

`llmstep "prefix"` sends the unsolved goals to `llmstep serve`, checks each suggested tactic on a
saved copy of the proof state, and shows the ones that work with Lean's "Try this" widget: goal
closers first and marked, then the others by how many goals they leave. Clicking one replaces the
whole `llmstep` call. The tactic itself leaves the proof state as it found it.

`suggestFromReply` is the core and takes the server's answer as plain data, so tests can feed it a
fixed answer without a server (see `tests/lean/fixed_reply.lean`).

Future work: check candidates in parallel.
-/

namespace LLMstep

open Lean Elab Tactic

/-- A suggestion shown as it is, without marks. -/
def plainSuggestion (tactic : String) : Lean.Meta.Tactic.TryThis.Suggestion :=
  { suggestion := .string tactic }

/-- How a checked suggestion appears in the widget: closers marked in front, the others followed
by the goals they leave. -/
def toTryThis (c : Checked) : Lean.Meta.Tactic.TryThis.Suggestion :=
  match c.result with
  | .proofDone => { suggestion := .string c.tactic, preInfo? := some "🎉 " }
  | .valid goals =>
    { suggestion := .string c.tactic
      postInfo? := some ("\nRemaining goals:\n" ++ joinGoalTexts goals) }
  | .invalid _ => plainSuggestion c.tactic

/-- "1 tactic", "2 tactics". -/
private def tacticCount (n : Nat) : String :=
  if n == 1 then "1 tactic" else s!"{n} tactics"

/-- The info shown when every suggestion was dropped: how many the server sent (`suggested`), how
many were checked (`checked`: distinct and non-blank, at most `llmstep.numSuggestions`), and where
to look. -/
def noneCheckedMessage (suggested checked : Nat) : String :=
  let verdict :=
    if checked == 1 then "the one checked fails, uses `sorry`, or changes nothing"
    else s!"none of the {checked} checked works (each fails, uses `sorry`, or changes nothing)"
  s!"llmstep: the server suggested {tacticCount suggested}; {verdict}. \
    `set_option trace.llmstep true` shows why."

/-- The info shown when the server sent suggestions but every one was blank. -/
def allBlankMessage (suggested : Nat) : String :=
  s!"llmstep: the server suggested {tacticCount suggested}, all of them blank. Try another prefix."

/-- The core of `llmstep`, given the server's answer: checks the suggestions (unless
`llmstep.check` is off) and shows the useful ones.

* `origSpan`: the syntax a clicked suggestion replaces, normally the whole `llmstep` call.
* `state`: the goals as sent to the server (`stateForServer`), to recognise suggestions that change
  nothing.
* `reply`: the server's suggestions, best first.

Every candidate is checked from the same saved state, and the state is back to it before the
suggestions are added (restoring a state would also drop the widget's message); nothing changes
after that. -/
def suggestFromReply (origSpan : Syntax) (state : String) (reply : Array ScoredTactic) :
    TacticM Unit := do
  let opts ← getOptions
  if reply.isEmpty then
    logInfo "llmstep: the server returned no suggestions for this goal. Try another prefix."
    return
  let candidates := (distinctTactics reply).extract 0 (max 1 (llmstep.numSuggestions.get opts))
  if candidates.isEmpty then
    logInfo m!"{allBlankMessage reply.size}"
    return
  unless llmstep.check.get opts do
    Lean.Meta.Tactic.TryThis.addSuggestions origSpan (candidates.map (plainSuggestion ·.tactic))
      (origSpan? := some origSpan)
    return
  let heartbeats := llmstep.maxHeartbeats.get opts
  let mut checked : Array Checked := #[]
  for s in candidates do
    let result ← checkCandidate s.tactic heartbeats
    trace[llmstep] "{s.tactic}: {result.describe}"
    checked := checked.push { tactic := s.tactic, score := s.score, index := checked.size, result }
  let shown := rankChecked state checked
  if shown.isEmpty then
    logInfo m!"{noneCheckedMessage reply.size candidates.size}"
  else
    Lean.Meta.Tactic.TryThis.addSuggestions origSpan (shown.map toTryThis)
      (origSpan? := some origSpan)

/-- `llmstep` at syntax `origSpan` with prefix `tacticPrefix`: ask the server, then
`suggestFromReply`. A transport or server failure is an error naming the next step. -/
def runLLMstep (origSpan : Syntax) (tacticPrefix : String) : TacticM Unit := do
  let state ← stateForServer
  let opts ← getOptions
  let request := requestFor opts state tacticPrefix (← fileContext origSpan)
  suggestFromReply origSpan state (← askServerOrThrow (← Endpoint.fromOptions opts) request)

/--
`llmstep "prefix"` asks a language model served by `llmstep serve` for the next tactic, and shows
the suggestions that work here. The optional string is the start of the tactic you want (for
example `llmstep "apply"`); bare `llmstep` leaves the choice to the model.

Each suggestion is run on a copy of the proof state first. Suggestions that close the goal come
first, marked 🎉; the others show the goals they leave, fewest first. Suggestions that fail, use
`sorry` or change nothing are dropped. Click one to replace the `llmstep` call with it. The tactic
itself changes nothing, so the proof stays unfinished until you pick a suggestion.

Options:
* `llmstep.url`: the server; default from `LLMSTEP_HOST`/`LLMSTEP_PORT`, else
  `http://localhost:6000`;
* `llmstep.token`: bearer token; default `LLMSTEP_TOKEN`;
* `llmstep.timeout`: seconds to wait for the server;
* `llmstep.numSuggestions`: how many tactics to ask for and check;
* `llmstep.check`: `false` shows the server's list unchecked;
* `llmstep.maxHeartbeats`: the budget to check one suggestion, in thousands, capped by what the
  declaration has left;
* `llmstep.context` and `llmstep.contextChars`: whether to send the file's source before the
  call, and how many characters of it.

`set_option trace.llmstep true` shows the request and the fate of every suggestion.
-/
syntax (name := llmstepTac) "llmstep" (ppSpace str)? : tactic

elab_rules : tactic
  | `(tactic| llmstep $[$tacticPrefix:str]?) =>
    runLLMstep (← getRef) ((TSyntax.getString <$> tacticPrefix).getD "")

end LLMstep
