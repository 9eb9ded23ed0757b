import LLMstep

/-!
# No server

Port 1 on the loopback interface is privileged and never serves llmstep, so curl's connection is
refused (exit 7) and the tactic fails with an error that says what to do. Needs `curl`.
-/

/--
error: llmstep: no llmstep server is answering at http://127.0.0.1:1. Start one with
`llmstep serve`, or point `set_option llmstep.url` at a running one.
-/
#guard_msgs in
set_option llmstep.url "http://127.0.0.1:1" in
example (n : Nat) : n + 0 = n := by
  llmstep
