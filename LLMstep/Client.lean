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
  | cannotStart (detail : String)
  /-- curl ran, but its output could not be read; `detail` is the reason. -/
  | cannotRead (detail : String)
  /-- Nothing answers at `url` (curl exit 7, or 6 for a host name that does not resolve). -/
  | unreachable (url : String)
  /-- No answer within `seconds` (curl exit 28); `0` means there was no `llmstep.timeout`, so it
  was curl's own connect timeout that ran out. -/
  | timedOut (url : String) (seconds : Nat)
  /-- Any other curl failure; `stderr` is curl's first line of complaint. -/
  | curlFailed (url : String) (exitCode : UInt32) (stderr : String)
  /-- The server answered with a status other than 200; `detail` is its own error message. -/
  | httpError (url : String) (status : Nat) (detail : String)
  /-- The answer is not the JSON the protocol promises; `snippet` is the start of what came back. -/
  | badReply (url : String) (why : String) (snippet : String)
  /-- The elaboration was cancelled (the file was edited) while curl ran; curl was killed. The
  tactic rethrows this as Lean's interrupt, so the message is never shown in the editor. -/
  | cancelled
  deriving Inhabited

/-- The one-line error the tactic shows, naming the next step. -/
def ClientError.message : ClientError → String
  | .cannotStart detail =>
    s!"llmstep: could not start `curl` ({detail}). Install curl and make sure it is on the PATH \
      of the Lean server."
  | .cannotRead detail =>
    s!"llmstep: curl ran, but its output could not be read ({detail})."
  | .unreachable url =>
    s!"llmstep: no llmstep server is answering at {url}. Start one with `llmstep serve`, or point \
      `set_option llmstep.url` at a running one."
  | .timedOut url 0 =>
    s!"llmstep: the server at {url} did not accept the connection before curl gave up. Check \
      that `llmstep serve` is running there, and the network between."
  | .timedOut url seconds =>
    s!"llmstep: the server at {url} did not answer within {seconds} s. Raise \
      `set_option llmstep.timeout`, or check the server's log."
  | .curlFailed url exitCode stderr =>
    s!"llmstep: curl failed (exit code {exitCode}) talking to {url}: {stderr}"
  | .httpError url status detail =>
    s!"llmstep: the server at {url} answered HTTP {status}: {detail}"
  | .badReply url why snippet =>
    s!"llmstep: the server at {url} sent an answer llmstep cannot read ({why}): {snippet}"
  | .cancelled => "llmstep: the request was cancelled."

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

/-- At most `limit` characters of `s` on one line, for error messages: line breaks (`\r` too)
become spaces, and a cut is marked with `…`, which counts towards the limit. -/
def snippet (s : String) (limit : Nat := 200) : String :=
  let flat := (s.replace "\r\n" " ").replace "\n" " " |>.replace "\r" " "
  if flat.isEmpty then "(empty)"
  else if flat.length ≤ limit then flat
  else String.ofList (flat.toList.take (limit - 1)) ++ "…"

/-- The first non-empty line of `s`. -/
def firstLine (s : String) : String :=
  ((s.splitOn "\n").filter (!·.isEmpty)).head?.getD ""

/-- What curl printed and how it exited. The output stays bytes until `interpret` decodes it:
a proxy's error page or a binary answer need not be UTF-8. -/
structure CurlOutput where
  /-- curl's exit code: 0, or why the transfer failed (7: refused, 28: timed out, ...). -/
  exitCode : UInt32
  /-- The body, then a newline and the HTTP status (`--write-out`). -/
  stdout : ByteArray
  /-- curl's complaints (`--show-error`). -/
  stderr : ByteArray

/-- The position of the last newline byte in `bytes`, if any. -/
def lastNewline? (bytes : ByteArray) : Option Nat := Id.run do
  let mut found : Option Nat := none
  for i in [0:bytes.size] do
    if bytes.data[i]! == 10 then found := some i
  return found

/-- Splits curl's stdout into the body and the status that `--write-out` put on the last line.
Works on bytes, so a body that is not UTF-8 still leaves the status readable. -/
def splitStatus (stdout : ByteArray) : ByteArray × Option Nat :=
  match lastNewline? stdout with
  | some i =>
    (stdout.extract 0 i, (String.fromUTF8? (stdout.extract (i + 1) stdout.size)).bind (·.toNat?))
  | none => (stdout, none)

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

/-- Text for an error message: the bytes as UTF-8, or how many there were when they are not. -/
def describeBytes (bytes : ByteArray) : String :=
  (String.fromUTF8? bytes).getD s!"{bytes.size} bytes that are not UTF-8 text"

/-- What curl's exit code and output mean. Pure, so every failure can be produced from a fixed
`CurlOutput`. -/
def interpret (url : String) (timeoutSeconds : Nat) (out : CurlOutput) :
    Except ClientError (Array ScoredTactic) :=
  if out.exitCode == 6 || out.exitCode == 7 then .error (.unreachable url)
  else if out.exitCode == 28 then .error (.timedOut url timeoutSeconds)
  else if out.exitCode != 0 then
    .error (.curlFailed url out.exitCode (firstLine (describeBytes out.stderr)))
  else
    let (body, status?) := splitStatus out.stdout
    match status?, String.fromUTF8? body with
    | none, _ => .error (.badReply url "no HTTP status" (snippet (describeBytes out.stdout)))
    | some 200, some text => decodeSuggestions url text
    | some status, some text => .error (decodeFailure url status text)
    | some status, none =>
      .error (.badReply url s!"HTTP {status}, not UTF-8 text" s!"{body.size} bytes")

/-- How often, in milliseconds, a running curl is checked for cancellation. An edit is noticed
within this time; the cost is one `tryWait` per period. -/
def pollMs : UInt32 := 20

/-- Waits for `child` to exit and returns its exit code; or, as soon as `interrupted` says so,
kills it, reaps it and returns `none`. -/
partial def waitOrKill {cfg : IO.Process.StdioConfig} (child : IO.Process.Child cfg)
    (interrupted : IO Bool) : IO (Option UInt32) := do
  if let some code ← child.tryWait then
    return some code
  if (← interrupted) then
    child.kill
    let _ ← child.wait
    return none
  IO.sleep pollMs
  waitOrKill child interrupted

/-- Runs curl with `args`, writing `input` to its stdin, until it exits or `interrupted` says
to stop: then curl is killed and `.cancelled` returned.

Not the standard library's one-shot `output`: it neither looks at cancellation nor accepts output
that is not UTF-8. stdout and stderr are drained in tasks of their own while this thread polls, so a large answer
cannot fill a pipe and stall curl. All three streams are piped: an inherited stdin would be the
Lean server's own connection to the editor. -/
def runCurl (args : Array String) (input : String) (interrupted : IO Bool) :
    IO (Except ClientError CurlOutput) := do
  match ← EIO.toBaseIO (IO.Process.spawn
      { cmd := "curl", args, stdin := .piped, stdout := .piped, stderr := .piped }) with
  | .error e => return .error (.cannotStart (toString e))
  | .ok child =>
    let (stdin, child) ← child.takeStdin
    let stdoutTask ← IO.asTask child.stdout.readBinToEnd Task.Priority.dedicated
    let stderrTask ← IO.asTask child.stderr.readBinToEnd Task.Priority.dedicated
    stdin.putStr input
    stdin.flush
    -- `stdin` is not used again, so it is closed here and curl sees the end of the body.
    let some exitCode ← waitOrKill child interrupted | return .error .cancelled
    match (← IO.wait stdoutTask), (← IO.wait stderrTask) with
    | .ok stdout, .ok stderr => return .ok { exitCode, stdout, stderr }
    | .error e, _ | _, .error e => return .error (.cannotRead (toString e))

/-- Posts `req` to the server at `url` (with `token`, if non-empty); suggestions best first, or why
there are none. `interrupted` is polled while curl runs (see `runCurl`). -/
def postSuggest (url : String) (timeoutSeconds : Nat) (token : String) (req : Request)
    (interrupted : IO Bool) : IO (Except ClientError (Array ScoredTactic)) := do
  match ← runCurl (curlArgs url timeoutSeconds token) req.body interrupted with
  | .error err => return .error err
  | .ok out => return interpret url timeoutSeconds out

end LLMstep
