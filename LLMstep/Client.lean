import LLMstep.Protocol

/-!
# Talking to `llmstep serve`

The only place that runs a process or reaches the network. It posts a `Request` with `curl` (body
on stdin, `--max-time`, the HTTP status written after the body) and turns every way this can fail
into a `ClientError` whose message says what to do next. Interpreting curl's output is a pure
function, `interpret`, kept apart from running curl.

Nothing here knows about goals or tactics; `LLMstep.Tactic` builds the request and shows the result.
-/

namespace LLMstep

open Lean

/-- Why asking the server for suggestions failed. -/
inductive ClientError where
  /-- `curl` could not be started; `detail` is the operating system's reason. -/
  | curlMissing (detail : String)
  /-- Nothing answers at `url` (curl exit 7, or 6 for a host name that does not resolve). -/
  | unreachable (url : String)
  /-- No answer within `seconds` (curl exit 28). -/
  | timedOut (url : String) (seconds : Nat)
  /-- Any other curl failure; `stderr` is curl's first line of complaint. -/
  | curlFailed (url : String) (exitCode : UInt32) (stderr : String)
  /-- The server answered with a status other than 200; `detail` is its own error message. -/
  | httpError (url : String) (status : Nat) (detail : String)
  /-- The answer is not the JSON the protocol promises; `snippet` is the start of what came back. -/
  | badReply (url : String) (why : String) (snippet : String)
  deriving Inhabited

/-- The one-line error the tactic shows, naming the next step. -/
def ClientError.message : ClientError → String
  | .curlMissing detail =>
    s!"llmstep: could not run `curl` ({detail}). Install curl and make sure it is on the PATH \
      of the Lean server."
  | .unreachable url =>
    s!"llmstep: no llmstep server is answering at {url}. Start one with `llmstep serve`, or point \
      `set_option llmstep.url` at a running one."
  | .timedOut url seconds =>
    s!"llmstep: the server at {url} did not answer within {seconds} s. Raise \
      `set_option llmstep.timeout`, or check the server's log."
  | .curlFailed url exitCode stderr =>
    s!"llmstep: curl failed (exit code {exitCode}) talking to {url}: {stderr}"
  | .httpError url status detail =>
    s!"llmstep: the server at {url} answered HTTP {status}: {detail}"
  | .badReply url why snippet =>
    s!"llmstep: the server at {url} sent an answer llmstep cannot read ({why}): {snippet}"

/-- The server's base URL. A non-empty `configured` (the `llmstep.url` option) wins; otherwise
`LLMSTEP_HOST` and `LLMSTEP_PORT` are read as the original llmstep did. -/
def resolveUrl (configured : String) : IO String := do
  if !configured.isEmpty then
    return configured
  let host := ((← IO.getEnv "LLMSTEP_HOST").filter (!·.isEmpty)).getD "localhost"
  if host.startsWith "http://" || host.startsWith "https://" then
    return host
  let port := ((← IO.getEnv "LLMSTEP_PORT").filter (!·.isEmpty)).getD "6000"
  return s!"http://{host}:{port}"

/-- The bearer token to send: a non-empty `configured` (the `llmstep.token` option), else
`LLMSTEP_TOKEN`, else none (the empty string). -/
def resolveToken (configured : String) : IO String := do
  if !configured.isEmpty then
    return configured
  return ((← IO.getEnv "LLMSTEP_TOKEN").filter (!·.isEmpty)).getD ""

/-- `<url>/v1/suggest`, whether or not `url` ends in a slash. -/
def suggestEndpoint (url : String) : String :=
  if url.endsWith "/" then url ++ "v1/suggest" else url ++ "/v1/suggest"

/-- curl's arguments: an argument array, never a shell string. `--write-out` appends a newline and
the HTTP status after the body, which is how non-200 answers are told apart. A non-empty `token`
is sent as `Authorization: Bearer <token>`. -/
def curlArgs (url : String) (timeoutSeconds : Nat) (token : String := "") : Array String :=
  #["--silent", "--show-error", "--request", "POST",
    "--header", "Content-Type: application/json",
    -- `@-`: the body comes on stdin, byte for byte (`-d` would strip the goals' newlines).
    "--data-binary", "@-",
    "--write-out", "\n%{http_code}"] ++
  (if timeoutSeconds > 0 then #["--max-time", toString timeoutSeconds] else #[]) ++
  (if token.isEmpty then #[] else #["--header", s!"Authorization: Bearer {token}"]) ++
  #[suggestEndpoint url]

/-- At most `limit` characters of `s` on one line, for error messages. -/
def snippet (s : String) (limit : Nat := 200) : String :=
  let flat := s.replace "\n" " "
  if flat.isEmpty then "(empty)"
  else if flat.length ≤ limit then flat
  else String.ofList (flat.toList.take limit) ++ "…"

/-- The first non-empty line of `s`. -/
def firstLine (s : String) : String :=
  ((s.splitOn "\n").filter (!·.isEmpty)).head?.getD ""

/-- Splits curl's stdout into the body and the status that `--write-out` put on the last line. -/
def splitStatus (stdout : String) : String × Option Nat :=
  match (stdout.splitOn "\n").reverse with
  | status :: bodyLines => ("\n".intercalate bodyLines.reverse, status.toNat?)
  | [] => ("", none)

/-- Decodes the body of a `200` answer. -/
def decodeSuggestions (url body : String) : Except ClientError (Array ScoredTactic) :=
  match parseReply body with
  | .ok reply => .ok reply.suggestions
  | .error why => .error (.badReply url why (snippet body))

/-- Turns a non-200 answer into an error carrying the server's own message when it sent one. -/
def decodeFailure (url : String) (status : Nat) (body : String) : ClientError :=
  match parseErrorReply body with
  | .ok err => .httpError url status s!"{err.error.message} ({err.error.code})"
  | .error _ => .httpError url status (snippet body)

/-- What curl's exit code and output mean. Pure, so every failure can be produced from a fixed
`IO.Process.Output`. -/
def interpret (url : String) (timeoutSeconds : Nat) (out : IO.Process.Output) :
    Except ClientError (Array ScoredTactic) :=
  if out.exitCode == 6 || out.exitCode == 7 then .error (.unreachable url)
  else if out.exitCode == 28 then .error (.timedOut url timeoutSeconds)
  else if out.exitCode != 0 then .error (.curlFailed url out.exitCode (firstLine out.stderr))
  else
    let (body, status?) := splitStatus out.stdout
    match status? with
    | none => .error (.badReply url "no HTTP status" (snippet out.stdout))
    | some 200 => decodeSuggestions url body
    | some status => .error (decodeFailure url status body)

/-- Runs curl, or says why it could not be started. -/
private def runCurl (args : Array String) (input : String) :
    IO (Except String IO.Process.Output) := do
  try
    return .ok (← IO.Process.output { cmd := "curl", args } (some input))
  catch e =>
    return .error (toString e)

/-- Posts `req` to the server at `url` (with `token`, if non-empty); suggestions best first, or why
there are none. -/
def postSuggest (url : String) (timeoutSeconds : Nat) (token : String) (req : Request) :
    IO (Except ClientError (Array ScoredTactic)) := do
  match ← runCurl (curlArgs url timeoutSeconds token) req.body with
  | .error detail => return .error (.curlMissing detail)
  | .ok out => return interpret url timeoutSeconds out

end LLMstep
