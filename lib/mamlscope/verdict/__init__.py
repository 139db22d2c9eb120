"""From measurements to verdicts: the rules and records (:mod:`.results`), the claim registry and
judging (:mod:`.claims`), and what the studies recorded about a claim (:mod:`.attached`).
Imports measurement and everything below it."""
