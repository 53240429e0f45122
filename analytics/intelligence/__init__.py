"""Conversation intelligence: what a model (or, without one, the offline analyzer) concludes
about each finished conversation, stored as one `ConversationAnalysis` per session.

* `schema`: ANALYSIS_SCHEMA / ANALYSIS_VERSION and the validation of the model's answer;
* `prompt`, `transcript`: what the model is sent (capped, hashed for the cache key);
* `llm`: the structured-output call through the provider chain, one retry on a bad answer;
* `offline`: lexicon sentiment, taxonomy topics, language detection;
* `runner`: units of work, concurrent within ANALYSIS_CONCURRENCY (the command and the hook);
* `hook`: ANALYSIS_ON_CLOSE, analysis of live sessions once they close;
* `selectors` / `services`: the reads and the one write.

docs/intelligence.md describes it all for operators.
"""
