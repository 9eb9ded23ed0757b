import LLMstep.Options
import LLMstep.Protocol
import LLMstep.Client
import LLMstep.Check
import LLMstep.Tactic

/-!
# llmstep

`import LLMstep` provides the `llmstep "prefix"` tactic, which asks a language model served by
`llmstep serve` for the next proof step and shows the suggestions that check. See `docs/lean.md`.

* `LLMstep.Options`: the `llmstep.*` options and the `llmstep` trace class.
* `LLMstep.Protocol`: the JSON exchanged with the server.
* `LLMstep.Client`: running curl and reporting every failure.
* `LLMstep.Check`: running one suggestion on a saved copy of the proof state.
* `LLMstep.Tactic`: ranking, display, and the tactic itself.
-/
