import LLMstep.Rank
import LLMstep.Ask

/-!
# `llmstep_search`: best-first proof search with the model

`llmstep_search` looks for a whole proof, one step at a time, the way llmstep's own miniF2F
search did. Each node is a saved proof state; its priority is the total score of the path to it
(the sum of its steps' scores). Expanding a node asks the server once for that node's goals,
checks each suggestion on the node's state exactly as `llmstep` does (`runCandidate`), and adds
the states that work as children; a state whose goals were seen before is not added again. The
search stops at the first state with no goals, or when its budget (expansions, seconds,
heartbeats) runs out.

`searchWith` takes the suggestion source as a function, so tests can run the search on fixed
answers without a server (`tests/lean/search_fixed.lean`). Core Lean only: no Aesop.
-/

namespace LLMstep

open Lean Elab Tactic

/-- One proof state the search reached. -/
structure SearchNode where
  /-- The proof state, restored before the node is expanded. -/
  state : Tactic.SavedState
  /-- Its goals as sent to the server. -/
  goals : String
  /-- The tactics that lead here from the start, in order. -/
  steps : Array String
  /-- The path's total score: the sum of its steps' scores. -/
  score : Float

/-- Why a search ended without a proof. -/
inductive StopReason where
  /-- `llmstep.searchMaxExpansions` nodes were expanded. -/
  | expansions (limit : Nat)
  /-- `llmstep.searchTimeout` seconds passed. -/
  | timeout (seconds : Nat)
  /-- The heartbeat budget (`llmstep.searchMaxHeartbeats`, or the declaration's) ran out. -/
  | heartbeats
  /-- Every state reached was expanded, and none of the suggestions led anywhere new. -/
  | exhausted

/-- One line for the message. -/
def StopReason.describe : StopReason → String
  | .expansions limit => s!"llmstep.searchMaxExpansions ({limit}) reached"
  | .timeout seconds => s!"llmstep.searchTimeout ({seconds} s) reached"
  | .heartbeats => "its heartbeat budget ran out (llmstep.searchMaxHeartbeats)"
  | .exhausted => "no suggestion led to a new state"

/-- The budget of one search. -/
structure SearchLimits where
  /-- At most this many expansions. -/
  expansions : Nat
  /-- Wall-clock seconds; `0`: none. -/
  seconds : Nat
  /-- `llmstep.searchMaxHeartbeats`, in thousands; capped by what the declaration has left. -/
  heartbeatThousands : Nat
  /-- `llmstep.maxHeartbeats` for each checked suggestion, in thousands. -/
  candidateThousands : Nat
  /-- Suggestions checked per expansion (`llmstep.numSuggestions`). -/
  perExpansion : Nat

/-- The limits the options set. -/
def SearchLimits.fromOptions (opts : Options) : SearchLimits :=
  { expansions := llmstep.searchMaxExpansions.get opts, seconds := llmstep.searchTimeout.get opts,
    heartbeatThousands := llmstep.searchMaxHeartbeats.get opts,
    candidateThousands := llmstep.maxHeartbeats.get opts,
    perExpansion := max 1 (llmstep.numSuggestions.get opts) }

/-- How a search ended. -/
structure SearchOutcome where
  /-- The node with no goals left, if one was found. -/
  proof? : Option SearchNode
  /-- Why it stopped, when there is no proof. -/
  reason : StopReason
  /-- Nodes expanded (server requests made). -/
  expanded : Nat
  /-- The node with the most steps (the better score among equals): the partial proof. -/
  deepest : SearchNode

/-- What expanding one node gave. -/
inductive Expansion where
  /-- A suggestion closed every goal: the finished node. -/
  | proof (node : SearchNode)
  /-- The new states, not seen before. -/
  | children (nodes : Array SearchNode)

/-- Expands `node`: its goals' suggestions from `suggest`, each checked on the node's state. -/
def expand (suggest : String → TacticM (Array ScoredTactic)) (limits : SearchLimits) (node : SearchNode)
    (seen : Array String) : TacticM Expansion := do
  node.state.restore (restoreInfo := true)
  let candidates := (distinctTactics (← suggest node.goals)).extract 0 limits.perExpansion
  let mut children : Array SearchNode := #[]
  let mut known := seen
  for s in candidates do
    let (result, after?) ← runCandidate s.tactic limits.candidateThousands (keep := true)
    trace[llmstep] "search, after {node.steps.size} step(s): {s.tactic}: {result.describe}"
    let some after := after? | continue
    let child : SearchNode :=
      { state := after, goals := "", steps := node.steps.push s.tactic, score := node.score + s.score }
    match result with
    | .proofDone => return .proof child
    | .valid goals =>
      let text := joinGoalTexts goals
      unless known.contains text do
        known := known.push text
        children := children.push { child with goals := text }
    | .invalid _ => pure ()
  return .children children

/-- Best-first search from the current goals, asking `suggest` for each node's suggestions.
Leaves the proof state as it found it. -/
def searchWith (suggest : String → TacticM (Array ScoredTactic)) (limits : SearchLimits) :
    TacticM SearchOutcome := do
  let root : SearchNode :=
    { state := (← Tactic.saveState), goals := (← stateForServer), steps := #[], score := 0 }
  let ctx ← readThe Core.Context
  let startHeartbeats ← IO.getNumHeartbeats
  -- The whole search runs as if it were a declaration of its own, with the search's budget: each
  -- candidate's budget (`candidateBudget`) is then capped by what the search has left.
  let budget := candidateBudget limits.heartbeatThousands ctx.maxHeartbeats
    (startHeartbeats - ctx.initHeartbeats)
  let startMs ← IO.monoMsNow
  let outcome ← withTheReader Core.Context
      (fun c => { c with maxHeartbeats := budget, initHeartbeats := startHeartbeats }) do
    let mut frontier : List SearchNode := [root]
    let mut seen : Array String := #[root.goals]
    let mut deepest := root
    let mut expanded := 0
    repeat
      let elapsedMs := (← IO.monoMsNow) - startMs
      let spent := (← IO.getNumHeartbeats) - startHeartbeats
      if expanded ≥ limits.expansions then
        return { proof? := none, reason := .expansions limits.expansions, expanded, deepest : SearchOutcome }
      if limits.seconds > 0 && elapsedMs ≥ limits.seconds * 1000 then
        return { proof? := none, reason := .timeout limits.seconds, expanded, deepest : SearchOutcome }
      if budget > 0 && spent ≥ budget then
        return { proof? := none, reason := .heartbeats, expanded, deepest : SearchOutcome }
      Core.checkInterrupted
      match frontier with
      | [] => return { proof? := none, reason := .exhausted, expanded, deepest : SearchOutcome }
      | node :: rest =>
        frontier := rest
        expanded := expanded + 1
        -- A heartbeat error outside a candidate's own check (printing goals, say) ends the search.
        let expansion? ← tryCatchRuntimeEx (some <$> expand suggest limits node seen)
          fun ex => if ex.isMaxHeartbeat then pure none else throw ex
        match expansion? with
        | none => return { proof? := none, reason := .heartbeats, expanded, deepest : SearchOutcome }
        | some (.proof done) =>
          return { proof? := some done, reason := .exhausted, expanded, deepest : SearchOutcome }
        | some (.children kids) =>
          for kid in kids do
            seen := seen.push kid.goals
            frontier := insertBy (fun (a b : SearchNode) => a.score > b.score) kid frontier
            if kid.steps.size > deepest.steps.size ||
                (kid.steps.size == deepest.steps.size && kid.score > deepest.score) then
              deepest := kid
    return { proof? := none, reason := .exhausted, expanded, deepest : SearchOutcome }
  root.state.restore (restoreInfo := true)
  return outcome

/-- The column `stx` starts at, in characters: where the lines of a proof put in its place go. -/
def columnOf (stx : Syntax) : TacticM Nat := do
  match stx.getPos? with
  | none => return 0
  | some pos =>
    let before := textBefore (← getFileMap).source pos.byteIdx 100000
    return (((before.splitOn "\n").getLast?.getD "").length)

/-- `steps` as a user writes them: one per line, each line after the first indented to `column`. -/
def layOut (steps : Array String) (column : Nat) : String :=
  let indent := String.ofList (List.replicate column ' ')
  ("\n" ++ indent).intercalate steps.toList

/-- Shows `outcome` at `ref`: the proof as one suggestion, or why there is none and the deepest
partial proof as a suggestion to continue from. -/
def showOutcome (ref : Syntax) (outcome : SearchOutcome) : TacticM Unit := do
  let column ← columnOf ref
  let expansions := if outcome.expanded == 1 then "1 expansion" else s!"{outcome.expanded} expansions"
  match outcome.proof? with
  | some done =>
    Lean.Meta.Tactic.TryThis.addSuggestions ref
      #[{ suggestion := .string (layOut done.steps column), preInfo? := some "🎉 " }]
      (origSpan? := some ref)
      (header := s!"llmstep_search found a proof in {done.steps.size} step(s), after {expansions}:")
  | none =>
    let why := s!"llmstep_search: no proof found after {expansions}; {outcome.reason.describe}."
    let best := outcome.deepest
    if best.steps.isEmpty then
      logInfo m!"{why}"
    else
      Lean.Meta.Tactic.TryThis.addSuggestions ref
        #[{ suggestion := .string (layOut best.steps column),
            postInfo? := some ("\nRemaining goals:\n" ++ best.goals) }]
        (origSpan? := some ref)
        (header := s!"{why} The deepest partial proof, {best.steps.size} step(s), to continue from:")

/-- `llmstep_search` at `ref`: search with the server's suggestions, then show the outcome. A
failure of the server is `llmstep`'s one-line error. -/
def runSearch (ref : Syntax) : TacticM Unit := do
  let opts ← getOptions
  let server ← Endpoint.fromOptions opts
  let context ← fileContext ref
  let ask (state : String) : TacticM (Array ScoredTactic) := do
    return (← askServerOrThrow server (requestFor opts state "" context))
  let outcome ← searchWith ask (SearchLimits.fromOptions opts)
  showOutcome ref outcome

/--
`llmstep_search` looks for a whole proof with the model served by `llmstep serve`: a best-first
search over proof states, where each step is a suggestion checked as `llmstep` checks it, and a
path's priority is the sum of its steps' scores. A proof found is offered as one suggestion that
replaces the call; otherwise the message says how far the search got and why it stopped, and
offers the deepest partial proof to continue from. The tactic itself changes nothing.

Each expansion is one server request and at most `llmstep.numSuggestions` checks. Budget:
`llmstep.searchMaxExpansions` (20), `llmstep.searchTimeout` (60 s), and
`llmstep.searchMaxHeartbeats` (in thousands, capped by what the declaration has left); each check
is also held to `llmstep.maxHeartbeats`. An edit stops the search.
-/
syntax (name := llmstepSearchTac) "llmstep_search" : tactic

elab_rules : tactic
  | `(tactic| llmstep_search) => runSearch (← getRef)

end LLMstep
