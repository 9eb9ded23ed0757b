import LLMstep.Protocol
import LLMstep.Check

/-!
# Ranking checked suggestions

From the server's list to what is worth showing: trimmed and de-duplicated before checking
(`distinctTactics`), then, once checked, goal closers first, then fewer goals left, higher score
and the server's order, without suggestions that change nothing or repeat a better one's goals
(`rankChecked`). Pure functions on plain data; `LLMstep.Tactic` and `LLMstep.Search` use them.
-/

namespace LLMstep

open Lean

/-- Trims surrounding whitespace (the model's output may end in a newline). -/
def trimWhitespace (s : String) : String :=
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
def insertBy {α : Type} (before : α → α → Bool) (x : α) : List α → List α
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

end LLMstep
