import LLMstep

/-!
# Examples

Small monotonicity proofs about `Nat` that need nothing beyond core Lean. Each proof is complete,
so this file builds without a server; the comment above a step shows the `llmstep` call that would
offer it, and the line below is what clicking the suggestion leaves in the file.

To try it live: start `llmstep serve`, replace a step by its `llmstep` call, and watch the
suggestions in the infoview.
-/

-- `llmstep "exact Nat.add"` should offer `exact Nat.add_le_add_right h c`, marked 🎉.
example (a b c : Nat) (h : a ≤ b) : a + c ≤ b + c := by
  exact Nat.add_le_add_right h c

-- `a + 1 ≤ b + 1` is `Nat.succ a ≤ Nat.succ b` by definition.
-- `llmstep "exact Nat.succ"` should offer `exact Nat.succ_le_succ h`.
example (a b : Nat) (h : a ≤ b) : a + 1 ≤ b + 1 := by
  exact Nat.succ_le_succ h

-- Both sides at once; bare `llmstep` lets the model choose the lemma.
example (a b c d : Nat) (h₁ : a ≤ b) (h₂ : c ≤ d) : a + c ≤ b + d := by
  exact Nat.add_le_add h₁ h₂

-- A chain, one step at a time. `llmstep "apply"` on the first goal should offer
-- `apply Nat.le_trans h₁`, shown with the goal it leaves (`b ≤ c + 1`); and so on.
example (a b c : Nat) (h₁ : a ≤ b) (h₂ : b ≤ c) : a ≤ c + 1 := by
  apply Nat.le_trans h₁
  apply Nat.le_trans h₂
  exact Nat.le_succ c

-- Reflexivity: `llmstep` should offer `exact Nat.le_refl n` (and perhaps `omega`).
example (n : Nat) : n ≤ n := by
  exact Nat.le_refl n

-- A whole proof at once: `llmstep_search` in place of the three steps below searches over proof
-- states with the same model, and offers the proof it finds as one suggestion.
example (a b c : Nat) (h₁ : a ≤ b) (h₂ : b ≤ c) : a ≤ c + 2 := by
  apply Nat.le_trans h₁
  apply Nat.le_trans h₂
  exact Nat.le_add_right c 2

-- With `import LLMstep`, `try?` also asks the model once its own strategies fail; here its own
-- strategies suffice (`omega`), so the server is never asked.
example (n : Nat) (h : 2 ≤ n) : 1 < n := by
  omega
