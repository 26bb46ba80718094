"""Training with the C reference's semantics: the 4-gram model's fused loop
(``trainer``) and the sampled models' minibatch loop (``sampled``)."""
