import LLMstep.Options
import LLMstep.Client
import LLMstep.Check

/-!
# Asking the server from inside Lean

What every caller of the server shares: the goals as sent (`stateForServer`), the file's source
before the call (`fileContext`), the server's address and timeout from the options
(`Endpoint.fromOptions`), the request (`requestFor`), and the call itself, with the editor's
cancellation wired to curl (`askServer`). The `llmstep` tactic, `llmstep_search` and the `try?`
generator each decide what to do with a failure: show it, or, for `try?`, stay silent.
-/

namespace LLMstep

open Lean Elab Tactic

/-- The current goals as sent to the server; an error when there are none. -/
def stateForServer : TacticM String := do
  let goals ← getUnsolvedGoals
  if goals.isEmpty then
    throwError "llmstep: no goals are left, so there is nothing to suggest."
  return joinGoalTexts (← goalTexts goals)

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

/-- Where the server is and how long to wait for it. -/
structure Endpoint where
  /-- The base URL (`llmstep.url`, else `LLMSTEP_HOST`/`LLMSTEP_PORT`). -/
  url : String
  /-- The bearer token, or empty (`llmstep.token`, else `LLMSTEP_TOKEN`). -/
  token : String
  /-- Seconds to wait for an answer; `0` waits without limit. -/
  timeoutSeconds : Nat

/-- The server the options name, waiting `llmstep.timeout` seconds. -/
def Endpoint.fromOptions (opts : Options) : IO Endpoint := do
  return { url := (← resolveUrl (llmstep.url.get opts)),
           token := (← resolveToken (llmstep.token.get opts)),
           timeoutSeconds := llmstep.timeout.get opts }

/-- The request for `state` with `tacticPrefix` and `context`, asking for `llmstep.numSuggestions`
tactics. -/
def requestFor (opts : Options) (state tacticPrefix : String) (context : String := "") :
    Request :=
  { tacticState := state, tacticPrefix, context,
    numSamples := max 1 (llmstep.numSuggestions.get opts) }

/-- Posts `request` to `server`: the suggestions best first, or why there are none. An edit made
while the server thinks kills curl and rethrows Lean's interrupt, so the file elaborates again at
once; every other failure is returned for the caller to show or to swallow. -/
def askServer (server : Endpoint) (request : Request) :
    CoreM (Except ClientError (Array ScoredTactic)) := do
  trace[llmstep] "POST {suggestEndpoint server.url} {request.body}"
  let interrupted ← interruptRequested
  match ← postSuggest server.url server.timeoutSeconds server.token request interrupted with
  | .error .cancelled => throwInterruptException
  | answer => return answer

/-- `askServer`, with a failure shown as the one-line error that names the next step. -/
def askServerOrThrow (server : Endpoint) (request : Request) : CoreM (Array ScoredTactic) := do
  match ← askServer server request with
  | .error err => throwError m!"{err.message}"
  | .ok reply => return reply

end LLMstep
