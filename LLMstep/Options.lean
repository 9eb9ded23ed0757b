import Lean

/-!
# Options of the `llmstep` tactic

Every setting of the Lean side is a `set_option`, declared here and nowhere else. They sit outside
any namespace on purpose: `register_option` names the option exactly as written, but the constant
it declares would get the namespace prefix, and the two would then disagree. An option can only be
set in a file that imports the file declaring it, so they live in a module of their own.

`LLMstep.Tactic` reads them; this file only declares them.
-/

/-- Base URL of the llmstep server, for example `http://localhost:6000`.
The tactic posts to `<url>/v1/suggest`. Empty (the default) means: read the environment
variables `LLMSTEP_HOST` (default `localhost`) and `LLMSTEP_PORT` (default `6000`), as the original
llmstep did. A `LLMSTEP_HOST` that starts with `http://` or `https://` is taken as the whole URL. -/
register_option llmstep.url : String := {
  defValue := ""
  descr := "base URL of the llmstep server; empty means http://$LLMSTEP_HOST:$LLMSTEP_PORT \
    (defaults localhost and 6000)"
}

/-- Bearer token for a server started with `llmstep serve --token` (or `LLMSTEP_TOKEN`). Empty (the
default) means: read the environment variable `LLMSTEP_TOKEN`; still empty, no token is sent. -/
register_option llmstep.token : String := {
  defValue := ""
  descr := "bearer token for a server that requires one; empty means $LLMSTEP_TOKEN"
}

/-- Seconds to wait for the server's answer (curl's `--max-time`); `0` waits without limit (curl's
own connect timeout still applies). An edit made while it waits cancels the request at once. -/
register_option llmstep.timeout : Nat := {
  defValue := 30
  descr := "seconds to wait for the llmstep server's answer; 0 waits without limit"
}

/-- How many tactics to ask the server for. At most this many are checked, so it also bounds the
time `llmstep` spends checking. -/
register_option llmstep.numSuggestions : Nat := {
  defValue := 5
  descr := "how many tactics to ask the llmstep server for (and check, at most)"
}

/-- Whether to run each suggested tactic before showing it. With `false`, every suggestion is
shown as the server sent it, unchecked, unmarked and in the server's order. -/
register_option llmstep.check : Bool := {
  defValue := true
  descr := "run each suggested tactic before showing it (false: show the server's list unchecked)"
}

/-- Heartbeat budget for checking one suggestion, in thousands, like `maxHeartbeats`, capped by
what the enclosing declaration has left of its own `maxHeartbeats`; `0` means "what the
declaration has left", never unlimited. A suggestion that runs out is not shown. The heartbeats
spent checking count against the declaration's budget. -/
register_option llmstep.maxHeartbeats : Nat := {
  defValue := 20000
  descr := "heartbeats (in thousands) allowed to check one suggested tactic, capped by what the \
    declaration has left; 0 means what the declaration has left"
}

/-- Whether to send the source of the current file before the `llmstep` call as `context`, for
models that read it (the `minictx-context` preset). `false` keeps the file in the editor. -/
register_option llmstep.context : Bool := {
  defValue := true
  descr := "send the file's source before the llmstep call as context (false: send none)"
}

/-- At most this many characters of the file before the call are sent as `context`: the ones
nearest the call. -/
register_option llmstep.contextChars : Nat := {
  defValue := 16000
  descr := "characters of the file before the llmstep call sent as context, nearest the call"
}

-- `set_option trace.llmstep true` shows the request sent and why each suggestion was kept or
-- dropped.
initialize Lean.registerTraceClass `llmstep

/-- The most nodes `llmstep_search` expands (one server request each) before it gives up. -/
register_option llmstep.searchMaxExpansions : Nat := {
  defValue := 20
  descr := "nodes llmstep_search expands (one server request each) before it gives up"
}

/-- Seconds of wall-clock time `llmstep_search` may take; `0` means no limit. Checked before each
expansion, so one expansion (a server request and its checks) may run past it. -/
register_option llmstep.searchTimeout : Nat := {
  defValue := 60
  descr := "seconds llmstep_search may take, checked before each expansion; 0 means no limit"
}

/-- Heartbeats (in thousands, like `maxHeartbeats`) for the whole of `llmstep_search`, capped by
what the declaration has left; `0` means what the declaration has left. Each checked suggestion
is further held to `llmstep.maxHeartbeats`. -/
register_option llmstep.searchMaxHeartbeats : Nat := {
  defValue := 100000
  descr := "heartbeats (in thousands) for all of llmstep_search, capped by what the declaration \
    has left; 0 means what the declaration has left"
}

/-- Whether `try?` asks the llmstep server for suggestions once its own strategies have failed. -/
register_option llmstep.trySuggestions : Bool := {
  defValue := true
  descr := "let try? ask the llmstep server for tactics once its own strategies fail"
}

/-- Seconds `try?` waits for the llmstep server; short, since `try?` must stay quick without a
server. A server that is down or slow gives no suggestions, never an error. -/
register_option llmstep.tryTimeout : Nat := {
  defValue := 5
  descr := "seconds try? waits for the llmstep server (down or slow: no suggestions, no error)"
}
