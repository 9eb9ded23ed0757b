import LLMstep.Options
import LLMstep.Client
import LLMstep.Check

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

/-- The current goals as sent to the server; an error when there are none. -/
def stateForServer : TacticM String := do
  let goals ← getUnsolvedGoals
  if goals.isEmpty then
    throwError "llmstep: no goals are left, so there is nothing to suggest."
  return joinGoalTexts (← goalTexts goals)

/-- Trims surrounding whitespace (the model's output may end in a newline). -/
private def trimWhitespace (s : String) : String :=
  let chars := s.toList.dropWhile Char.isWhitespace
  String.ofList (chars.reverse.dropWhile Char.isWhitespace).reverse

/-- The server's suggestions trimmed, without empty or repeated tactics, in the server's order. -/
def distinctTactics (reply : Array ScoredTactic) : Array ScoredTactic :=
  reply.foldl (init := #[]) fun kept s =>
    let tactic := trimWhitespace s.tactic
    if tactic.isEmpty || kept.any (·.tactic == tactic) then kept
    else kept.push { s with tactic := tactic }

/-- A suggestion after checking. -/
structure Checked where
  /-- The tactic text. -/
  tactic : String
  /-- The server's score. -/
  score : Float
  /-- Its position in the server's answer, to keep sorting deterministic. -/
  index : Nat
  /-- What running it showed. -/
  result : CheckResult

/-- Goals left: `0` for a closer, none for an invalid suggestion. -/
def Checked.goalsLeft? (c : Checked) : Option Nat :=
  match c.result with
  | .proofDone => some 0
  | .valid goals => some goals.length
  | .invalid _ => none

/-- The display order: fewer goals left first (so closers lead), then higher score, then the
server's order. -/
def Checked.before (a b : Checked) : Bool :=
  let ga := a.goalsLeft?.getD 0
  let gb := b.goalsLeft?.getD 0
  if ga != gb then ga < gb
  else if a.score != b.score then a.score > b.score
  else a.index < b.index

/-- Inserts `x` before the first element it comes `before`; equal elements keep their order. -/
private def insertBy {α : Type} (before : α → α → Bool) (x : α) : List α → List α
  | [] => [x]
  | y :: ys => if before x y then x :: y :: ys else y :: insertBy before x ys

/-- A stable insertion sort: a handful of suggestions, and no dependence on the sorting API. -/
private def sortBy {α : Type} (before : α → α → Bool) (xs : Array α) : Array α :=
  (xs.foldl (fun sorted x => insertBy before x sorted) []).toArray

/-- The suggestions worth showing, best first. Invalid ones go, and so do those that change
nothing (they leave `state`, the goals `llmstep` started from) and those that leave the same goals
as a better one. Every goal closer stays: they are all complete proofs. -/
def rankChecked (state : String) (checked : Array Checked) : Array Checked := Id.run do
  let useful := checked.filter fun c =>
    match c.result with
    | .proofDone => true
    | .valid goals => joinGoalTexts goals != state
    | .invalid _ => false
  let mut shown : Array Checked := #[]
  let mut seen : Array String := #[]
  for c in sortBy Checked.before useful do
    if let .valid goals := c.result then
      let left := joinGoalTexts goals
      if seen.contains left then continue
      seen := seen.push left
    shown := shown.push c
  return shown

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

/-- The last `maxChars` characters of `source` before byte offset `byteIdx` (a syntax position,
so a character boundary). Works on bytes, so it does not depend on the string-position API. -/
def textBefore (source : String) (byteIdx maxChars : Nat) : String :=
  match String.fromUTF8? (source.toUTF8.extract 0 byteIdx) with
  | some before => String.ofList (before.toList.drop (before.length - maxChars))
  | none => ""

/-- The file's source before `stx`, capped by `llmstep.contextChars`; empty when
`llmstep.context` is off or the syntax has no position. -/
def fileContext (stx : Syntax) : TacticM String := do
  let opts ← getOptions
  unless llmstep.context.get opts do return ""
  match stx.getPos? with
  | some pos => return textBefore (← getFileMap).source pos.byteIdx (llmstep.contextChars.get opts)
  | none => return ""

/-- Whether this elaboration has been cancelled, as an `IO` action that curl's polling loop can
call: the task's own cancellation flag, or the cancel token that the language server sets when
the file is edited (the one `Core.checkInterrupted` reads). -/
def interruptRequested : CoreM (IO Bool) := do
  let token? := (← read).cancelTk?
  return do
    if (← IO.checkCanceled) then return true
    match token? with
    | some token => return (← token.isSet)
    | none => return false

/-- `llmstep` at syntax `origSpan` with prefix `tacticPrefix`: ask the server, then
`suggestFromReply`. A transport or server failure is an error naming the next step; an edit made
while the server thinks kills curl and abandons the call at once. -/
def runLLMstep (origSpan : Syntax) (tacticPrefix : String) : TacticM Unit := do
  let state ← stateForServer
  let opts ← getOptions
  let url ← resolveUrl (llmstep.url.get opts)
  let token ← resolveToken (llmstep.token.get opts)
  let timeout := llmstep.timeout.get opts
  let request : Request :=
    { tacticState := state, tacticPrefix, numSamples := max 1 (llmstep.numSuggestions.get opts),
      context := (← fileContext origSpan) }
  trace[llmstep] "POST {suggestEndpoint url} {request.body}"
  match ← postSuggest url timeout token request (← interruptRequested) with
  | .error .cancelled => throwInterruptException
  | .error err => throwError m!"{err.message}"
  | .ok reply => suggestFromReply origSpan state reply

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
