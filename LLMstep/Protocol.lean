import Lean

/-!
# The wire protocol

The JSON that `llmstep` exchanges with `llmstep serve` (the server's `protocol/wire.py`):

* `POST <url>/v1/suggest` with `{"tactic_state": str, "prefix": str, "num_samples": int, "context"?: str}`;
* a `200` answer `{"suggestions": [{"tactic": str, "score": float}, ...], "model", "elapsed_ms"}`,
  best first, every tactic starting with the prefix;
* any other status `{"error": {"code": str, "message": str}}`.

Field names are the server's and are never renamed. Only data and (de)serialisation live here;
running curl is `LLMstep.Client`'s job. `tests/lean/wire_examples.json` holds request bodies exactly
as `Request.body` writes them.
-/

namespace LLMstep

open Lean

/-- The body of `POST /v1/suggest`. -/
structure Request where
  /-- The unsolved goals as the infoview shows them (`Meta.ppGoal`), separated by blank lines. -/
  tacticState : String
  /-- The start of the tactic the user wants; every suggestion begins with it. -/
  tacticPrefix : String
  /-- How many sequences the server should generate. -/
  numSamples : Nat
  /-- The source of the file before the call, for models that read it; empty sends none. -/
  context : String := ""
  deriving Inhabited

/-- The request as a JSON object with the server's field names (`context` only when non-empty).

Named `toJsonObject`, not `toJson`: inside `def Request.toJson` a bare `toJson` would name the
definition itself (its short name is a local there), not `Lean.toJson`. -/
def Request.toJsonObject (r : Request) : Json :=
  Json.mkObj ([
    ("tactic_state", Json.str r.tacticState),
    ("prefix", Json.str r.tacticPrefix),
    ("num_samples", Lean.toJson r.numSamples)] ++
    (if r.context.isEmpty then [] else [("context", Json.str r.context)]))

/-- The bytes sent: compact JSON, non-ASCII characters as they are, only `"`, `\`, newlines and
other control characters escaped. The order of the keys is `Json.compress`'s, which has changed
between Lean releases; neither the server nor the tests depend on it. -/
def Request.body (r : Request) : String :=
  r.toJsonObject.compress

/-- One suggestion of a `200` answer. -/
structure ScoredTactic where
  /-- The tactic text, starting with the prefix. -/
  tactic : String
  /-- The model's score, higher is better (mean log-probability, so usually negative). -/
  score : Float
  deriving FromJson, Inhabited

/-- A `200` answer. Its other fields (`model`, `elapsed_ms`) are not needed here and not read. -/
structure Reply where
  /-- Best first. -/
  suggestions : Array ScoredTactic
  deriving FromJson

/-- The `error` object of a non-`2xx` answer. -/
structure ErrorDetail where
  /-- A stable machine-readable code such as `invalid_request` or `model_unavailable`. -/
  code : String
  /-- One line for humans. -/
  message : String
  deriving FromJson

/-- The body of every non-`2xx` answer. -/
structure ErrorReply where
  /-- What went wrong. -/
  error : ErrorDetail
  deriving FromJson

/-- Decode a `200` body. -/
def parseReply (body : String) : Except String Reply := do
  fromJson? (← Json.parse body)

/-- Decode a non-`2xx` body. -/
def parseErrorReply (body : String) : Except String ErrorReply := do
  fromJson? (← Json.parse body)

end LLMstep
