import LLMstep

/-!
# What the client makes of curl's output, and what it sends

`LLMstep.interpret` is pure: each case below is a fixed curl exit code and output, as
`--write-out "\n%{http_code}"` leaves it (the body, a newline, the status). No server, no curl.
-/

open LLMstep in
/-- The message the tactic would show, or the tactics it would check, for curl's raw output. -/
def curlSaysBytes (exitCode : UInt32) (stdout stderr : ByteArray) : String :=
  match interpret "http://127.0.0.1:6000" 30 { exitCode, stdout, stderr } with
  | .ok tactics => s!"ok: {tactics.map (·.tactic)}"
  -- The JSON parser's own wording is Lean's, not ours; pin only the kind and the snippet.
  | .error (.badReply _ why shown) =>
    if why.startsWith "HTTP" || why.startsWith "no HTTP" then s!"bad reply ({why}): {shown}"
    else s!"bad reply: {shown}"
  | .error err => err.message

/-- `curlSaysBytes` for text output. -/
def curlSays (exitCode : UInt32) (stdout : String) (stderr : String := "") : String :=
  curlSaysBytes exitCode stdout.toUTF8 stderr.toUTF8

/-! ## A `200` answer, scores negative, integral or fractional -/

/-- info: "ok: #[rfl, simp]" -/
#guard_msgs in
#eval curlSays 0 "{\"suggestions\":[{\"tactic\":\"rfl\",\"score\":-0.125},\
  {\"tactic\":\"simp\",\"score\":-1}],\"model\":\"tiny\",\"elapsed_ms\":3.5}\n200"

/-! ## The server's own error message is shown -/

/--
info: "llmstep: the server at http://127.0.0.1:6000 answered HTTP 422: tactic_state is missing
(invalid_request)"
-/
#guard_msgs in
#eval curlSays 0
  "{\"error\":{\"code\":\"invalid_request\",\"message\":\"tactic_state is missing\"}}\n422"

/-- info: "llmstep: the server at http://127.0.0.1:6000 answered HTTP 500: Internal Server Error" -/
#guard_msgs in
#eval curlSays 0 "Internal Server Error\n500"

/-! ## Answers that are not llmstep's JSON -/

/-- info: "bad reply: <html>oops</html>" -/
#guard_msgs in
#eval curlSays 0 "<html>oops</html>\n200"

/-- info: "bad reply: (empty)" -/
#guard_msgs in
#eval curlSays 0 "\n200"

/-! ## Transport failures name the next step -/

/--
info: "llmstep: no llmstep server is answering at http://127.0.0.1:6000. Start one with
`llmstep serve`, or point `set_option llmstep.url` at a running one."
-/
#guard_msgs in
#eval curlSays 7 "\n000" "curl: (7) Failed to connect to 127.0.0.1 port 6000: Connection refused"

/--
info: "llmstep: the server at http://127.0.0.1:6000 did not answer within 30 s. Raise
`set_option llmstep.timeout`, or check the server's log."
-/
#guard_msgs in
#eval curlSays 28 "\n000" "curl: (28) Operation timed out after 30001 milliseconds"

/--
info: "llmstep: curl failed (exit code 35) talking to http://127.0.0.1:6000: curl: (35) SSL connect
error"
-/
#guard_msgs in
#eval curlSays 35 "\n000" "curl: (35) SSL connect error\n"

/-! ## Output that is not UTF-8

A proxy's error page or a binary answer: the status still reads, and the message says what came
back instead of blaming curl's installation. -/

/-- info: "bad reply (HTTP 200, not UTF-8 text): 2 bytes" -/
#guard_msgs in
#eval curlSaysBytes 0 (ByteArray.mk #[0xff, 0xfe] ++ "\n200".toUTF8) ByteArray.empty

/-- info: "bad reply (HTTP 502, not UTF-8 text): 3 bytes" -/
#guard_msgs in
#eval curlSaysBytes 0 (ByteArray.mk #[0xc3, 0x28, 0xa0] ++ "\n502".toUTF8) ByteArray.empty

/--
info: "llmstep: curl failed (exit code 35) talking to http://127.0.0.1:6000: 3 bytes that are not
UTF-8 text"
-/
#guard_msgs in
#eval curlSaysBytes 35 "\n000".toUTF8 (ByteArray.mk #[0xff, 0xff, 0xff])

/-! ## Timeouts with and without `llmstep.timeout` -/

/--
info: "llmstep: the server at http://h:1 did not accept the connection before curl gave up. Check
that `llmstep serve` is running there, and the network between."
-/
#guard_msgs in
#eval (LLMstep.ClientError.timedOut "http://h:1" 0).message

/-! ## Error snippets stay within their limit, on one line -/

/-- info: "abcd…" -/
#guard_msgs in
#eval LLMstep.snippet "abcdefgh" 5

/-- info: "a b c" -/
#guard_msgs in
#eval LLMstep.snippet "a\r\nb\rc" 5

/-- info: true -/
#guard_msgs in
#eval (LLMstep.snippet (String.ofList (List.replicate 500 'x'))).length == 200

/-! ## The request body

What the server reads from it, field by field: the key order is `Json.compress`'s and differs
between Lean releases, so it is not pinned. `wire_examples.json` holds more bodies. -/

open Lean in
/-- The fields of a request body, decoded again, each as compact JSON, in a fixed order. -/
def fieldsOf (body : String) : String :=
  match Json.parse body with
  | .error e => s!"not JSON: {e}"
  | .ok json =>
    let fields := ["context", "num_samples", "prefix", "tactic_state"].filterMap fun key =>
      (json.getObjVal? key).toOption.map fun value => s!"{key}={value.compress}"
    "; ".intercalate fields

/-- info: "num_samples=5; prefix=\"exact\"; tactic_state=\"n : Nat\\n⊢ n + 0 = n\"" -/
#guard_msgs in
#eval fieldsOf ({ tacticState := "n : Nat\n⊢ n + 0 = n", tacticPrefix := "exact", numSamples := 5 } :
  LLMstep.Request).body

/-! ## Where the request goes -/

/-- info: "http://localhost:6000/v1/suggest" -/
#guard_msgs in
#eval LLMstep.suggestEndpoint "http://localhost:6000/"

/-- info: "https://example.org/llm/v1/suggest" -/
#guard_msgs in
#eval LLMstep.suggestEndpoint "https://example.org/llm"

/-- info: "http://10.0.0.2:8080" -/
#guard_msgs in
#eval LLMstep.resolveUrl "http://10.0.0.2:8080"

/-! A token, when set, goes in an `Authorization` header; none is sent otherwise. -/

/-- info: true -/
#guard_msgs in
#eval (LLMstep.curlArgs "http://h:1" 0 "s3cret").contains "Authorization: Bearer s3cret"

/-- info: false -/
#guard_msgs in
#eval (LLMstep.curlArgs "http://h:1" 0).any (·.startsWith "Authorization")

/-! The file context: sent only when non-empty, and capped to the characters nearest the call. -/

/--
info: "context=\"theorem t : True := trivial\\n\"; num_samples=5; prefix=\"\"; tactic_state=\"⊢ True\""
-/
#guard_msgs in
#eval fieldsOf ({ tacticState := "⊢ True", tacticPrefix := "", numSamples := 5,
                  context := "theorem t : True := trivial\n" } : LLMstep.Request).body

/-- info: "∀ b" -/
#guard_msgs in
#eval LLMstep.textBefore "a ∀ b c" 7 3

/-- info: "" -/
#guard_msgs in
#eval LLMstep.textBefore "a ∀ b c" 7 0
