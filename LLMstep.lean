import LLMstep.Options
import LLMstep.Protocol
import LLMstep.Client
import LLMstep.Check
import LLMstep.Rank
import LLMstep.Ask
import LLMstep.Tactic
import LLMstep.Search
import LLMstep.TrySuggest

/-!
# llmstep

`import LLMstep` provides the `llmstep "prefix"` tactic, which asks a language model served by
`llmstep serve` for the next proof step and shows the suggestions that check; `llmstep_search`,
which searches for a whole proof with the same model; and a generator that lets core Lean's
`try?` ask the model once its own strategies fail. See `docs/lean.md`.

* `LLMstep.Options`: the `llmstep.*` options and the `llmstep` trace class.
* `LLMstep.Protocol`: the JSON exchanged with the server.
* `LLMstep.Client`: running curl and reporting every failure.
* `LLMstep.Check`: running one suggestion on a saved copy of the proof state.
* `LLMstep.Rank`: de-duplicating and ranking the checked suggestions.
* `LLMstep.Ask`: the goals, the file context and the request; the call, with cancellation.
* `LLMstep.Tactic`: display, and the `llmstep` tactic itself.
* `LLMstep.Search`: `llmstep_search`, a best-first proof search.
* `LLMstep.TrySuggest`: the `try?` generator.
-/
